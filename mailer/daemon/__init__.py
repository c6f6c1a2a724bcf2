"""The process runtime: the daemon's jobs and web server, the scheduler, process-wide tuning."""
