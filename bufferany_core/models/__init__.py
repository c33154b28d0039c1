"""Models: `nn.Module`s, tensors in and tensors out. No file I/O, device choice or windowing here;
weights are found by `bufferany_core.models.weights` and orchestration lives in the pipeline."""
