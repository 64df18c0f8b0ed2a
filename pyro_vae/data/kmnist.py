"""Kuzushiji-MNIST (Clanuwat et al., 2018): ten hiragana in cursive Japanese, released as MNIST was,
read from ``dataset.root`` or downloaded from torchvision's mirror."""

from .idx import IdxFile, IdxRelease

# torchvision.datasets.KMNIST's mirrors, resources (the MD5s of the published .gz files) and class names.
# No SHA-256 of the decompressed content is known here (neither torchvision nor any source at hand publishes
# one, and the files cannot be fetched offline), so a file is verified by the MD5 of the published .gz: a copy
# gzipped otherwise, or uncompressed, reads as unofficial (dataset.verify=false reads it, with a warning).
RELEASE = IdxRelease(
    "KMNIST",
    "KMNIST",
    ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    {
        "train-images-idx3-ubyte": IdxFile("bdb82020997e1d708af4cf47b453dcf7"),
        "train-labels-idx1-ubyte": IdxFile("e144d726b3acfaa3e44228e80efcd344"),
        "t10k-images-idx3-ubyte": IdxFile("5c965bf0a639b31b8f53240b1b52f4d7"),
        "t10k-labels-idx1-ubyte": IdxFile("7320c461ea6c1c855c0b718fb2a4b134"),
    },
    ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
)

READER = RELEASE.reader()
