"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): Zalando's article images, released as MNIST was,
read from ``dataset.root`` or downloaded from torchvision's mirror."""

from .idx import IdxFile, IdxRelease

# torchvision.datasets.FashionMNIST's mirrors and resources: the MD5s of the published .gz files.
RELEASE = IdxRelease(
    "Fashion-MNIST",
    "FashionMNIST",
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    {
        "train-images-idx3-ubyte": IdxFile("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels-idx1-ubyte": IdxFile("25c81989df183df01b3e8a0aad5dffbe"),
        "t10k-images-idx3-ubyte": IdxFile("bef4ecab320f06d8554ea6380940ec79"),
        "t10k-labels-idx1-ubyte": IdxFile("bb300cfdad3c16e7a12a480ee83cd310"),
    },
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)

READER = RELEASE.reader()
