"""Semantic datasets on disk: VOC-style folders and plain images/ + masks/ folders."""

from __future__ import annotations

import zlib
from pathlib import Path

from segcli.data.images import IMAGE_SUFFIXES, list_images, read_image, read_mask
from segcli.errors import DataError

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def read_class_names(root: Path) -> tuple[str, ...] | None:
    """class_names.txt (one per line, background first), as convert-labelme and labelme write."""
    path = root / "class_names.txt"
    if not path.is_file():
        return None
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if not names:
        raise DataError(f"{path}: no class names in the file")
    return names


def split_list(root: Path, split: str) -> Path:
    """ImageSets/Segmentation/<split>.txt: VOC's split list, which convert-labelme writes too."""
    return root / "ImageSets" / "Segmentation" / f"{split}.txt"


def read_split_ids(root: Path, split: str) -> list[str]:
    """The ids (file stems) that `split_list(root, split)` names: each line's first word."""
    list_file = split_list(root, split)
    if not list_file.is_file():
        raise DataError(f"{list_file}: split list not found")
    return [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]


class PairedFolder:
    """Images and masks paired by file stem: `load(i)` -> dict(image, mask, name, paths)."""

    def __init__(self, pairs: list[tuple[Path, Path]], class_names: tuple[str, ...] | None):
        self.pairs, self.class_names = pairs, class_names

    def __len__(self) -> int:
        return len(self.pairs)

    def name(self, index: int) -> str:
        return self.pairs[index][0].stem

    def load_mask(self, index: int):
        return read_mask(self.pairs[index][1])

    def load(self, index: int) -> dict:
        image_path, mask_path = self.pairs[index]
        return {
            "image": read_image(image_path),
            "mask": read_mask(mask_path),
            "name": image_path.stem,
            "image_path": image_path,
            "mask_path": mask_path,
        }


def is_voc(root: Path) -> bool:
    return (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir()


def open_voc(root: Path, split: str) -> PairedFolder:
    """JPEGImages/<id>.jpg and SegmentationClass/<id>.png for the ids listed in
    ImageSets/Segmentation/<split>.txt."""
    pairs = []
    for stem in read_split_ids(root, split):
        image = _find_image(root / "JPEGImages", stem)
        if image is None:
            raise DataError(
                f"{split_list(root, split)}: '{stem}' has no image in {root / 'JPEGImages'}"
            )
        pairs.append((image, root / "SegmentationClass" / f"{stem}.png"))
    names = read_class_names(root) or VOC_CLASSES
    return PairedFolder(pairs, names)


def is_image_mask_folder(root: Path) -> bool:
    return any(
        (base / "images").is_dir() and (base / "masks").is_dir() for base in (root, root / "train")
    )


def open_image_mask_folder(root: Path, split: str, val_fraction: float = 0.1) -> PairedFolder:
    """`root/{train,val}/{images,masks}`, or `root/{images,masks}` split by `train.txt`/`val.txt`
    when present, else deterministically by a hash of each stem."""
    names = read_class_names(root)
    if (root / split / "images").is_dir():
        return PairedFolder(pair_by_stem(root / split / "images", root / split / "masks"), names)
    pairs = pair_by_stem(root / "images", root / "masks")
    list_file = root / f"{split}.txt"
    if list_file.is_file():
        wanted = {line.strip() for line in list_file.read_text().splitlines() if line.strip()}
        return PairedFolder([p for p in pairs if p[0].stem in wanted], names)
    chosen = hash_split([p[0].stem for p in pairs], split, val_fraction)
    return PairedFolder([p for p, keep in zip(pairs, chosen) if keep], names)


def pair_by_stem(images: Path, masks: Path) -> list[tuple[Path, Path]]:
    """Pairs (image, mask) matched by stem; any file without a partner is an error naming it."""
    for folder in (images, masks):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found")
    image_files = {p.stem: p for p in list_images(images)}
    mask_files = {p.stem: p for p in list_images(masks)}
    lonely = sorted(set(image_files) ^ set(mask_files))
    if lonely:
        where = [str(image_files.get(s) or mask_files.get(s)) for s in lonely[:3]]
        more = f" and {len(lonely) - 3} more" if len(lonely) > 3 else ""
        raise DataError(f"{', '.join(where)}{more}: no partner with the same file stem")
    if not image_files:
        raise DataError(f"{images}: no images found")
    return [(image_files[s], mask_files[s]) for s in sorted(image_files)]


def _find_image(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def hash_split(stems: list[str], split: str, val_fraction: float = 0.1) -> list[bool]:
    """Which of `stems` belong to `split`: a deterministic hash of each stem puts about
    `val_fraction` of them in val (at least one when there are two or more)."""
    rank = [zlib.crc32(stem.encode()) % 1000 for stem in stems]
    in_val = [r < val_fraction * 1000 for r in rank]
    if len(stems) > 1 and not any(in_val):  # small folders still get one val image
        in_val[rank.index(min(rank))] = True
    return [v == (split == "val") for v in in_val]
