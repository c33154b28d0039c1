"""Fine-tuning of the temporal layers (Buffer Anytime), `bufferany-train`."""
