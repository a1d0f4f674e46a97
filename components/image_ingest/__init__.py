"""Ingest a folder of labelled images into TFRecord examples (a custom ExampleGen)."""
