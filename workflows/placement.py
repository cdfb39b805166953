"""Placement batches of a sample-fitted map on a Dask cluster (``embed_run(..., map_fn=...)``)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

__all__ = ["dask_map_fn"]


def dask_map_fn(client: Any) -> Callable[[Callable[..., Any], tuple, Sequence[Any]], Iterable[Any]]:
    """A :data:`xsgpu.embed.sample_place.MapFn` that runs each batch as a task on ``client``'s workers.

    The shared arguments (the map's inputs and coordinates, tens of MB) are scattered to every worker
    once; each task then carries only its batch. Results come back in batch order.
    """
    def map_fn(func: Callable[..., Any], shared: tuple, batches: Sequence[Any]) -> list[Any]:
        if not batches:
            return []
        shared_futures = [client.scatter(a, broadcast=True, hash=False) if hasattr(a, "nbytes") else a
                          for a in shared]
        batch_futures = client.scatter(list(batches), hash=False)
        futures = [client.submit(func, *shared_futures, b, pure=False, retries=2) for b in batch_futures]
        return client.gather(futures)

    return map_fn
