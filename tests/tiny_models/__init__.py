"""Writers of tiny random models in the real file formats, shared by unit and host tests."""
