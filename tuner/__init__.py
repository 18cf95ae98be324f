"""cce-tune's application layer: data, training, memory model, search, CLI and reports."""
