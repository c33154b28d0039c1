"""`bufferany-server`: the background process that owns the GPU, keeps models loaded between jobs,
queues jobs and streams their events to clients (`bufferany_core.client`). See docs/protocol.md."""
