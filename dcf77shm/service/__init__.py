"""What `dcf77shm run` is around the pipeline: the main loop, status/metrics, systemd notify."""
