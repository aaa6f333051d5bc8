"""pytest fixtures for the meter emulators. Test modules import them:
``from emulators.fixtures import emulators_fixture  # noqa: F401``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .pty import EmulatorThread


@pytest.fixture(name="emulators")
def emulators_fixture() -> Iterator[Callable[..., EmulatorThread]]:
    """emulators(Cls, *args, **kw) -> a started emulator, stopped at teardown."""
    made: list[EmulatorThread] = []

    def make(cls: type[EmulatorThread], *args: object, **kw: object) -> EmulatorThread:
        emu = cls(*args, **kw).start()
        made.append(emu)
        return emu

    yield make
    for emu in made:
        emu.stop()
