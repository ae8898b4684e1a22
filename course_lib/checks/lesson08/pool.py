"""Check 08.4: the image history pool of Shrivastava et al. (2017), as CycleGAN uses it."""

from __future__ import annotations

import torch

from course_lib.checks import Mistake, call, case_seed, exercise, expect_shape, expect_tensor, own_rng, poke_


# ----------------------------------------------------------------------------------------------
# 08.4 the image history pool
# ----------------------------------------------------------------------------------------------

_IMAGE_SHAPE = (1, 2, 3)                                              # (C, H, W): tiny, non-square
_PATTERN = torch.arange(6, dtype=torch.float32).view(_IMAGE_SHAPE) / 8  # in every image, so mixed pixels show


def _tagged(ids: list[int]) -> torch.Tensor:
    """(B, C, H, W) images whose content names them: image k is k + a fixed pattern (exact in float32)."""
    return torch.tensor(ids, dtype=torch.float32)[:, None, None, None] + _PATTERN


def _image_ids(images: torch.Tensor) -> list[int | None]:
    """The names of (N, C, H, W) images made by ``_tagged`` (None for an image that is none of them)."""
    if images.dim() != 4 or tuple(images.shape[1:]) != _IMAGE_SHAPE:
        return [None] * len(images)
    x = images.detach().float()
    k = torch.nan_to_num(x[:, 0, 0, 0].round(), nan=0.0, posinf=0.0, neginf=0.0)              # (N,)
    ok = (k >= 1) & (x == k[:, None, None, None] + _PATTERN).flatten(1).all(dim=1)             # (N,)
    return [int(v) if good else None for v, good in zip(k.tolist(), ok.tolist())]


def _image_id(image: torch.Tensor) -> int | None:
    """The name of one (C, H, W) image made by ``_tagged``, or None."""
    return _image_ids(image[None])[0]


def _stored(pool) -> list[torch.Tensor]:
    if not hasattr(pool, "images"):
        raise Mistake("the pool has no attribute `images`: keep the stored images in the list self.images "
                      "(as __init__ sets it up), one (C, H, W) tensor per stored image.")
    try:
        images = list(pool.images)
    except TypeError:
        raise Mistake(f"self.images should be a list of (C, H, W) tensors, not {type(pool.images).__name__}.") from None
    for image in images:
        if not isinstance(image, torch.Tensor):
            raise Mistake(f"self.images should hold tensors, one per stored image, but holds a {type(image).__name__}.")
    return images


def _ids_of(images: list[torch.Tensor]) -> list[int | None]:
    if not images:
        return []
    if all(tuple(image.shape) == _IMAGE_SHAPE for image in images):
        return _image_ids(torch.stack([image.detach() for image in images]))
    return [_image_id(image) if image.dim() == 3 else None for image in images]


def _stored_ids(pool) -> list[int | None]:
    return _ids_of(_stored(pool))


class _PoolRun:
    """Feed a learner's pool batches of named images and follow what it must hold after every call.

    Whatever order the learner draws its random numbers in, a correct pool's output tells exactly what
    happened: a row that comes back as itself was not swapped, a row that comes back as an older image
    swapped with it. So the pool's content after each call is known, and compared with ``pool.images``.
    """

    def __init__(self, pool, capacity: int, poke: bool = True) -> None:
        self.pool, self.capacity, self.poke = pool, capacity, poke
        self.inserted: dict[int, int] = {}           # id of each image that should be stored -> time it went in
        self.next_id, self.clock = 1, 0
        self.after_full = self.swaps = 0             # images handled once full; of which swapped
        self.ranks = [0] * capacity                  # age rank of the image handed back (0 = oldest stored)

    def query(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        ids = list(range(self.next_id, self.next_id + batch))
        self.next_id += batch
        w = torch.ones((), requires_grad=True)
        fakes = _tagged(ids) * w                     # attached to a graph, like G's output
        out = call(self.pool.query, fakes, generator, what="ImagePool.query")
        if isinstance(out, (list, tuple)):
            raise Mistake("query returned a Python list: return ONE tensor of shape (B, C, H, W), e.g. torch.stack(out).")
        out = expect_tensor(out, "ImagePool.query")
        expect_shape(out, (batch, *_IMAGE_SHAPE), "ImagePool.query", "One image for D per new image, in the same order.")
        if out.requires_grad:
            raise Mistake("the batch you return still requires grad, attached to G's graph: D's loss would then "
                          "backpropagate into the generator through the pool. Detach the images first "
                          "(images = images.detach()).")
        got = _image_ids(out)
        for row, (new, old) in enumerate(zip(ids, got)):
            self._follow(row, new, old)
        stored = self._check_stored(ids, got)
        if self.poke:
            self._poke(out, fakes, stored)
        return out

    def _follow(self, row: int, new: int, old: int | None) -> None:
        if old is None:
            raise Mistake(f"row {row} of the batch you returned is not one of the images given to the pool (its "
                          "pixels match none of them exactly): return each image unchanged, the new one or a stored one.")
        if len(self.inserted) < self.capacity:
            if old != new:
                raise Mistake(f"while the pool is not full yet (it held {len(self.inserted)} of {self.capacity} "
                              "images), each new image must be stored AND returned as it is; row "
                              f"{row} came back as another image.")
            self.inserted[new] = self.clock
        else:
            self.after_full += 1
            if old in self.inserted:
                rank = sorted(self.inserted.values()).index(self.inserted[old])
                self.ranks[rank] += 1
                self.swaps += 1
                del self.inserted[old]
                self.inserted[new] = self.clock
            elif old != new:
                if old > new:
                    raise Mistake(f"row {row} came back as the image of a LATER row of the same batch: keep the "
                                  "batch's order, one output row per input row.")
                raise Mistake(f"row {row} came back as an older image that is no longer in the pool (it was handed "
                              "back before, or was never stored). On a swap, the old image leaves the pool and the new "
                              "one takes its slot.")
        self.clock += 1

    def _check_stored(self, ids: list[int], got: list[int | None]) -> list[int | None]:
        images = _stored(self.pool)
        if any(image.requires_grad for image in images):
            raise Mistake("the pool stores images that still require grad: each keeps G's whole computation graph "
                          "alive (memory grows with every step, and a later backward may go through old graphs). "
                          "Store a detached copy: image.detach().clone().")
        stored = _ids_of(images)
        if None in stored:
            raise Mistake("the pool holds an image that is none of the images it was given (modified, or a placeholder "
                          "like zeros): store exact copies of the new images.")
        if len(stored) > self.capacity:
            raise Mistake(f"the pool grew beyond its capacity: it holds {len(stored)} images, capacity "
                          f"{self.capacity}. Once it is full, a new image only enters by taking the slot of the image "
                          "you hand back.")
        if sorted(stored) == sorted(self.inserted):
            return stored
        for new, old in zip(ids, got):
            if old != new and old in stored and new not in stored:
                raise Mistake("you handed back an old image but did not store the new one in its place: on a swap, "
                              "the new image must take the old one's slot (self.images[slot] = the new image), so the "
                              "pool keeps changing.")
        lost = set(self.inserted) - set(stored) - set(ids)
        sneaked = [new for new, old in zip(ids, got) if old == new and new in stored and new not in self.inserted]
        if lost and sneaked:
            raise Mistake("a new image went into the pool, but you returned the NEW image instead of the old one, and "
                          "the old image was lost. This happens when the old image is a view that the swap "
                          "overwrites (self.images[i].copy_(image), or a slot of a preallocated tensor): take the old "
                          "image out first, old = self.images[i], then put a copy of the new one in its place, "
                          "self.images[i] = image.clone().")
        if len(stored) < len(self.inserted):
            raise Mistake(f"the pool holds {len(stored)} images where it should hold {len(self.inserted)}: while it is "
                          "not full, store every new image; once full, replace (don't remove) the one you hand back.")
        raise Mistake(f"after this call the pool should hold the images {sorted(self.inserted)} but holds "
                      f"{sorted(stored)}: store new images while not full; on a swap, the new image takes the slot "
                      "of the old one you return; otherwise the pool is unchanged.")

    def _poke(self, out: torch.Tensor, fakes: torch.Tensor, stored: list[int | None]) -> None:
        """Change the returned batch, then the input batch, in place: the pool's history must not move."""
        try:
            poke_(out, 1000.0)
        except RuntimeError:                         # an expanded or otherwise read-only view: nothing to poke
            return
        if _stored_ids(self.pool) != stored:
            raise Mistake("the images you returned share memory with the images you stored: when D's code changes its "
                          "batch in place, the pool's history changes too. Store copies (image.detach().clone()) and "
                          "return a new tensor (torch.stack(out)).")
        poke_(fakes, 1000.0)
        if _stored_ids(self.pool) != stored:
            raise Mistake("the pool stores views of the batch it was given, not copies: when that tensor is reused or "
                          "changed, the history changes with it. Store image.detach().clone().")


def _make_pool(ImagePool, capacity: int):
    return call(ImagePool, capacity, what=f"ImagePool({capacity})")


@exercise("08.4", "the image history pool", forbid=("course_lib.cyclegan.ImagePool",))
@own_rng
def check_image_pool(ImagePool) -> None:
    # 1. Follow every call: fill, then swaps; batches of several sizes, one straddling the end of the fill.
    capacity, sizes = 10, [3, 4, 1, 4, 2]
    run = _PoolRun(_make_pool(ImagePool, capacity), capacity)
    g = torch.Generator().manual_seed(case_seed(0))
    for step in range(100):
        run.query(sizes[step % len(sizes)], g)

    # 2. The statistics: a fair coin once full, and the stored image handed back chosen uniformly. One image
    # per call, so that a per-image loop and a vectorised pool (which swaps distinct slots within a batch)
    # follow the same law exactly.
    capacity = 5
    run = _PoolRun(_make_pool(ImagePool, capacity), capacity, poke=False)
    g = torch.Generator().manual_seed(case_seed(1))
    for step in range(500):
        run.query(1, g)
    frac = run.swaps / run.after_full
    if frac < 0.05:
        raise Mistake("once full, your pool never hands back an older image: with probability 1/2 it should return a "
                      "stored image (chosen at random) and keep the new one in its place; that is the whole point of "
                      "the history.")
    if frac > 0.95:
        raise Mistake("once full, your pool always hands back an older image: flip a fair coin per image, "
                      "torch.rand((), generator=generator) < 0.5, and return the new image itself on the other half.")
    if not 0.4 <= frac <= 0.6:
        raise Mistake(f"once full, your pool handed back an older image for {frac:.0%} of the new images: it should "
                      "be half of them (a fair coin, torch.rand(...) < 0.5).")
    share = [r / run.swaps for r in run.ranks]                       # expected 1 / capacity each
    if share[0] > 0.8:
        raise Mistake("the image you hand back is nearly always the OLDEST stored one (a queue): pick the slot "
                      "uniformly at random, torch.randint(capacity, (), generator=generator).")
    if share[-1] > 0.8:
        raise Mistake("the image you hand back is nearly always the NEWEST stored one (the same slot every time?): "
                      "pick the slot uniformly at random, torch.randint(capacity, (), generator=generator).")
    if min(share) < 0.3 / capacity or max(share) > 2.5 / capacity:
        raise Mistake("the stored image you hand back is not chosen uniformly: some slots are picked far more often "
                      f"than others (shares by age, oldest first: {[round(s, 2) for s in share]}). Use "
                      "torch.randint(capacity, (), generator=generator).")

    # 3. Same seeded generator, same batches: the same output, whatever the global random state.
    outputs = []
    for global_seed in (1, 2):
        pool, g = _make_pool(ImagePool, 4), torch.Generator().manual_seed(case_seed(5))
        torch.manual_seed(case_seed(global_seed))
        outputs.append(torch.cat([call(pool.query, _tagged(list(range(4 * i + 1, 4 * i + 5))), g,
                                       what="ImagePool.query") for i in range(8)]))
    if not torch.equal(outputs[0], outputs[1]):
        raise Mistake("two runs with the same seeded generator gave different batches: draw the coin flips and the "
                      "slots from the `generator` argument (torch.rand(..., generator=generator), torch.randint(..., "
                      "generator=generator)), not from random.random() or torch's global generator.")

    # 4. Capacity 0 switches the pool off: the batch comes back unchanged (and detached).
    pool = _make_pool(ImagePool, 0)
    fakes = _tagged([1, 2, 3]) * torch.ones((), requires_grad=True)
    try:
        out = call(pool.query, fakes, torch.Generator().manual_seed(case_seed(0)), what="ImagePool.query")
    except Mistake as err:
        raise Mistake(f"with capacity 0 (the pool switched off): {err} Return the batch as it is (detached) when "
                      "the capacity is 0.") from None
    out = expect_tensor(out, "ImagePool.query")
    if tuple(out.shape) != tuple(fakes.shape) or not torch.equal(out.detach(), fakes.detach()):
        raise Mistake("with capacity 0 (the pool switched off) the batch should come back unchanged.")
    if out.requires_grad:
        raise Mistake("with capacity 0 the batch should come back detached (images.detach()).")
    if _stored(pool):
        raise Mistake("with capacity 0 the pool should store nothing.")

