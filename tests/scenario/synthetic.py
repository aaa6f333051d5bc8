"""Synthetic soak data for analysis and report tests: a board whose gpu clock
drops at a known moment, with the windows and 1 Hz samples the executor would
have recorded."""

from __future__ import annotations

T0 = 5_000_000_000_000  # an arbitrary monotonic origin


def throttling_board(duration_s=1800, window_s=10, drop_at=860.0, cold=28.0, hot=17.36):
    """Raw executor windows + 1 Hz samples of a board whose gpu clock drops
    1300->828 MHz at ``drop_at`` with tj at 97 °C; throughput follows."""
    windows, samples = [], []
    for i in range(int(duration_s / window_s)):
        t0, t1 = i * window_s, (i + 1) * window_s
        # the part of the window spent throttled
        frac = min(max((t1 - drop_at) / window_s, 0.0), 1.0)
        ips = cold * (1 - frac) + hot * frac
        gpu_min = 828e6 if frac > 0 else 1300e6
        tj = 50 + 47 * min(t1 / drop_at, 1.0)
        windows.append(
            {
                "t_start_ns": T0 + int(t0 * 1e9),
                "t_end_ns": T0 + int(t1 * 1e9),
                "iterations": int(round(ips * window_s)),
                "throughput_ips": ips,
                "p50_ms": 1000 / ips,
                "p99_ms": 1100 / ips,
                "temps_c": {"tj": {"max": tj, "mean": tj - 1}, "cpu": {"max": tj - 5, "mean": tj - 6}},
                "clocks_hz": {
                    "gpu": {"min": gpu_min, "mean": 1300e6 * (1 - frac) + 828e6 * frac},
                    "cpu": {"min": 2201.6e6, "mean": 2201.6e6},
                },
                "power_w": 30.0 - 8 * frac,
            }
        )
    for s in range(duration_s):
        gpu = 828_000_000 if s >= drop_at else 1_300_000_000
        tj = 50 + 47 * min(s / drop_at, 1.0)
        samples.append(
            {
                "t_ns": T0 + s * 1_000_000_000,
                "temps_c": {"tj": tj, "cpu": tj - 5, "gpu": tj - 2},
                "clocks_hz": {"gpu": gpu, "cpu": 2_201_600_000},
            }
        )
    return windows, samples
