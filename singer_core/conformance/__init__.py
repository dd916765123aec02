"""Conformance runner: replays any fixture in the shared format against our modules."""
