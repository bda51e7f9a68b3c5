"""Video files: one PyAV reader (pts timestamps), one writer, provenance marks."""
