"""Fashion-MNIST loading, Gluon-style batch transforms and a mini-batch loader."""

from minicnn.data.fashion_mnist import (
    CLASS_NAMES,
    FILES,
    MIRRORS,
    FileSpec,
    find_data_dir,
    load_fashion_mnist,
    read_idx,
    search_dirs,
    verify_file,
)
from minicnn.data.iterators import load_data_fashion_mnist
from minicnn.data.loader import DataLoader
from minicnn.data.transforms import Compose, Resize, ToTensor, resize, to_tensor

__all__ = [
    "CLASS_NAMES",
    "FILES",
    "MIRRORS",
    "Compose",
    "DataLoader",
    "FileSpec",
    "Resize",
    "ToTensor",
    "find_data_dir",
    "load_data_fashion_mnist",
    "load_fashion_mnist",
    "read_idx",
    "resize",
    "search_dirs",
    "to_tensor",
    "verify_file",
]
