"""labgrid as the fleet's inventory and lock (extra ``[labgrid]``, in its own
venv: labgrid's pyserial-labgrid replaces pyserial's ``serial``).

- Boards are labgrid places; a place's tags are the board's labels, so a
  plan selects with ``boards: {tags: {soc: orin-nx}}`` (or names = places).
- The agent's address is the place tag ``edgebench_agent=HOST:PORT`` (and
  ``edgebench_profile`` the expected profile). A tag, not an exported
  NetworkService resource: it needs no labgrid exporter beside the agent, is
  readable before the place is acquired (status, selection), and names the
  agent's gRPC port rather than the board's SSH service.
- Before a board's jobs the selector becomes a reservation: the selector's
  tags plus ``name=<place>`` (the coordinator's scheduler matches place names
  as a tag). edgebench waits for the allocation up to ``reserve_timeout``,
  then acquires the place, runs, and releases it and cancels the
  reservation. A place another client holds is waited for, then skipped
  with the reason (who holds it).
- Release is cleanup: ``close()`` (a finally, also on Ctrl-C and SIGTERM)
  releases every place this process holds and cancels its reservations.

All coordinator calls go through labgrid's own client API
(``labgrid.remote.client.ClientSession``: its start/sync and its stub), on
one asyncio loop in a thread of its own; board threads submit to it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from agent.errors import BadInput, one_line
from controller.fleet.inventory import Board

ADDRESS_TAG = "edgebench_agent"
PROFILE_TAG = "edgebench_profile"
# place tags naming the agent's secret files on the controller, as an inventory
# board's token_file / tls_* do (labgrid tag keys are [a-z][a-z0-9_]+): a fleet
# through the coordinator authenticates like one through boards.yaml
AUTH_TAGS = {f"edgebench_{k}": k for k in ("token_file", "tls_ca", "tls_cert", "tls_key")}


class PlaceUnavailable(Exception):
    """The place stayed held by another client past the reserve timeout."""


class Labgrid:
    def __init__(
        self, coordinator: str, reserve_timeout_s: float = 60.0, call_timeout_s: float = 10.0
    ) -> None:
        try:
            from labgrid.remote import client as lg_client
            from labgrid.remote.generated import labgrid_coordinator_pb2 as lg_pb2
        except ImportError:
            raise BadInput(
                "--labgrid needs the [labgrid] extra (its own venv: make labgrid -> .venv-labgrid)"
            ) from None
        self.pb2 = lg_pb2
        self.reserve_timeout_s = reserve_timeout_s
        self.call_timeout_s = call_timeout_s
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="labgrid-loop", daemon=True)
        self._thread.start()

        async def start() -> Any:
            # made on the running loop: grpc.aio binds the channel to the loop it is created on
            from labgrid.util.proxy import proxymanager

            target = proxymanager.get_grpc_address(coordinator, default_port=20408)
            session = lg_client.ClientSession(target, self.loop)
            await session.start()
            return session

        try:
            self.session = self._call(start(), timeout=call_timeout_s + 20)
        except Exception as exc:  # labgrid raises its own errors and grpc's
            self.loop.call_soon_threadsafe(self.loop.stop)
            why = one_line(exc) or type(exc).__name__
            raise BadInput(f"labgrid coordinator {coordinator}: {why}") from None
        self._held: set[str] = set()
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self.user = self.session.getuser()

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout or self.call_timeout_s)

    def _rpc(self, method: str, request: Any) -> Any:
        """A coordinator RPC, made on the session's loop (grpc.aio calls belong to it)."""

        async def call() -> Any:
            return await getattr(self.session.stub, method)(request)

        return self._call(call())

    async def _sync(self) -> None:
        await self.session.sync_with_coordinator()

    # -- inventory --------------------------------------------------------------
    def boards(self) -> list[Board]:
        """Every place that names its agent (tag edgebench_agent), as a Board."""
        self._call(self._sync())
        out = []
        for name, place in sorted(self.session.places.items()):
            tags = dict(place.tags)
            addr = tags.get(ADDRESS_TAG)
            if not addr:
                continue
            labels = {k: v for k, v in tags.items() if k not in (ADDRESS_TAG, PROFILE_TAG, *AUTH_TAGS)}
            auth = {field: tags[tag] for tag, field in AUTH_TAGS.items() if tags.get(tag)}
            if (auth.get("tls_cert") or auth.get("tls_key")) and not auth.get("tls_ca"):
                raise BadInput(
                    f"labgrid place {name}: edgebench_tls_cert/edgebench_tls_key need edgebench_tls_ca"
                )
            out.append(Board(name=name, address=addr, labels=labels, profile=tags.get(PROFILE_TAG), **auth))
        if not out:
            raise BadInput(f"no labgrid place has an {ADDRESS_TAG}=HOST:PORT tag")
        return out

    def holder(self, place: str) -> str | None:
        self._call(self._sync())
        p = self.session.places.get(place)
        return p.acquired if p is not None else None

    # -- the lock -------------------------------------------------------------------
    @contextlib.contextmanager
    def hold(self, board: Board, tags: dict[str, str] | None = None) -> Iterator[None]:
        """Reserve (selector tags + the place name), wait for the allocation up
        to reserve_timeout, acquire; release and cancel afterwards, whatever
        happens in between. PlaceUnavailable when it never came free."""
        token = self._reserve(board.name, tags or {})
        try:
            self._acquire(board.name)
            try:
                yield
            finally:
                self._release(board.name)
        finally:
            self._cancel(token)

    def _reserve(self, place: str, tags: dict[str, str]) -> str:
        pb2 = self.pb2
        fltr = {**tags, "name": place}
        req = pb2.CreateReservationRequest(filters={"main": pb2.Reservation.Filter(filter=fltr)}, prio=0.0)
        token = self._rpc("CreateReservation", (req)).reservation.token
        with self._lock:
            self._tokens.add(token)
        deadline = time.monotonic() + self.reserve_timeout_s
        while True:
            res = self._rpc("PollReservation", pb2.PollReservationRequest(token=token)).reservation
            if res.allocations:
                return token
            if time.monotonic() >= deadline:
                who = self.holder(place)
                self._cancel(token)
                held = f"held by {who}" if who else "not allocated"
                raise PlaceUnavailable(
                    f"labgrid place {place} {held}: waited {self.reserve_timeout_s:g} s (--reserve-timeout)"
                )
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))

    def _acquire(self, place: str) -> None:
        self._rpc("AcquirePlace", (self.pb2.AcquirePlaceRequest(placename=place)))
        with self._lock:
            self._held.add(place)

    def _release(self, place: str) -> None:
        try:
            self._rpc("ReleasePlace", (self.pb2.ReleasePlaceRequest(placename=place)))
        finally:
            with self._lock:
                self._held.discard(place)

    def _cancel(self, token: str) -> None:
        with contextlib.suppress(Exception):  # already gone (expired, or cancelled by close())
            self._rpc("CancelReservation", (self.pb2.CancelReservationRequest(token=token)))
        with self._lock:
            self._tokens.discard(token)

    def close(self) -> None:
        """Release every place still held and cancel every reservation (the
        cleanup path of Ctrl-C, SIGTERM or an error), then end the session."""
        with self._lock:
            held, tokens = list(self._held), list(self._tokens)
        for place in held:
            with contextlib.suppress(Exception):
                self._release(place)
        for token in tokens:
            self._cancel(token)
        with contextlib.suppress(Exception):
            self._call(self.session.stop())
            self._call(self.session.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
