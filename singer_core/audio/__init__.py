"""Audio side of SINGER: waveform preparation, wav2vec2 features, optional vocal separation."""
