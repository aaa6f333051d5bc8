"""Telemetry: sensor readers (sysfs, jtop, tegrastats, psutil) behind one sampler."""
