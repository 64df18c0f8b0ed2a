"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): Zalando's article images, released as MNIST was,
read from ``dataset.root`` or downloaded from torchvision's mirror; where ``dataset.root`` is left at
``data`` and that folder holds none of the files, read from Debian's package ``dataset-fashion-mnist``."""

from pathlib import Path

from .idx import IdxFile, IdxRelease, SystemCopy

# Where Debian's package dataset-fashion-mnist installs the four .gz files (``dpkg -L dataset-fashion-mnist``).
DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")

# name -> IdxFile(MD5 of the published .gz: torchvision.datasets.FashionMNIST.resources,
#                 SHA-256 of the decompressed IDX content). The content digests were computed from the
# files of Debian's package (version 0.0~git20200523.55506a9-1; its .gz files are compressed otherwise,
# so their MD5s differ from the published ones): headers 60000/10000 items of 28x28, 6000/1000 labels of
# each class. Only the content is checked, so the published .gz, Debian's .gz and an uncompressed copy verify.
RELEASE = IdxRelease(
    "Fashion-MNIST",
    "FashionMNIST",
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    {
        "train-images-idx3-ubyte": IdxFile(
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train-labels-idx1-ubyte": IdxFile(
            "25c81989df183df01b3e8a0aad5dffbe", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "t10k-images-idx3-ubyte": IdxFile(
            "bef4ecab320f06d8554ea6380940ec79", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "t10k-labels-idx1-ubyte": IdxFile(
            "bb300cfdad3c16e7a12a480ee83cd310", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    system_copy=SystemCopy(DEBIAN_FOLDER, "Debian's package dataset-fashion-mnist"),
)

READER = RELEASE.reader()
