"""DataLoaders whose order and augmentation are a pure function of (seed, epoch, position).

That is what makes a resumed run identical to an uninterrupted one: the sampler can start in
the middle of an epoch, and each item's augmentation seed does not depend on which worker or
rank loads it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import cv2
import torch
from torch.utils.data import DataLoader, DistributedSampler

from segcli.data.transforms import sample_seed
from segcli.data.workers import STOP_SIGNALS, init_worker, stops_blocked


class ResumableSampler(DistributedSampler):
    """Per-epoch shuffled order (DistributedSampler's), sharded across ranks, that yields
    `(index, augmentation_seed)` and can start `skip` samples into the epoch."""

    def __init__(self, dataset, seed: int, num_replicas: int = 1, rank: int = 0):
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.skip = 0

    def start_at(self, epoch: int, skip: int = 0) -> None:
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip :]
        return iter([(i, sample_seed(self.seed, self.epoch, i)) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def _own_generator(seed: int) -> torch.Generator:
    """A loader draws its workers' base seed when iterated; from the global generator that
    draw would shift the model's random stream (dropout) differently after a resume."""
    return torch.Generator().manual_seed(seed)


# Ctrl-C and SIGTERM are the main process's (segcli.engine.stopping): it stops the workers.
_init_worker = functools.partial(init_worker, ignore=STOP_SIGNALS)


class ForkSafeLoader(DataLoader):
    """A DataLoader whose workers are forked while OpenCV's thread pool is stopped and the
    stop signals are blocked (segcli.data.workers.stops_blocked).

    A pool thread of the main process can hold the pool's lock at the moment of fork; the
    worker then hangs at its first OpenCV call. With the pool at one thread while the workers
    start, they inherit none (and stay single-threaded); the main process gets its own back.
    """

    def __iter__(self):
        if self.num_workers == 0:
            return super().__iter__()
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with stops_blocked():
                return super().__iter__()
        finally:
            cv2.setNumThreads(threads)


def train_loader(
    dataset,
    batch_size: int,
    workers: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    collate_fn=None,
) -> DataLoader:
    sampler = ResumableSampler(dataset, seed, num_replicas=world_size, rank=rank)
    return ForkSafeLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        worker_init_fn=_init_worker,
        collate_fn=collate_fn,
        generator=_own_generator(seed),
    )


def eval_loader(
    dataset, workers: int, rank: int = 0, world_size: int = 1, batch_size: int = 1, collate_fn=None
) -> DataLoader:
    """Every item once, in order; under DDP each rank takes a strided share (no padding)."""
    indices = list(range(rank, len(dataset), world_size))
    return ForkSafeLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_init_worker,
        collate_fn=collate_fn,
        generator=_own_generator(0),
    )
