"""Per-cell feature transformers: morphology, intensity, texture, colocalization."""
