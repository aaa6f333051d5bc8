"""Running the agent as a service: sd_notify and the watchdog, the config file,
housekeeping (expired uploads, run retention) and the systemd installer."""
