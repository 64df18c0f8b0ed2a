"""The labelled images of semi-supervised training: balanced over the classes, fixed by their seed alone."""

import pytest
import torch

from pyro_vae.data.labelled_subset import balanced_labelled_indices, unlabelled_indices
from pyro_vae.errors import ConfigError

# An unbalanced training split of 3 classes, in no order: 40, 25 and 35 images.
LABELS = torch.cat([torch.zeros(40), torch.ones(25), torch.full((35,), 2)]).long()[
    torch.randperm(100, generator=torch.Generator().manual_seed(0))
]


def test_each_class_gets_its_share_sorted_and_distinct():
    chosen = balanced_labelled_indices(LABELS, 30, seed=0)
    assert chosen.dtype == torch.long and len(chosen.unique()) == 30
    assert torch.equal(chosen, chosen.sort().values)
    assert LABELS[chosen].bincount().tolist() == [10, 10, 10]


def test_the_seed_alone_fixes_the_draw():
    torch.manual_seed(1)
    first = balanced_labelled_indices(LABELS, 15, seed=7)
    torch.manual_seed(2)  # a different global state changes nothing
    assert torch.equal(first, balanced_labelled_indices(LABELS, 15, seed=7))
    assert not torch.equal(first, balanced_labelled_indices(LABELS, 15, seed=8))


def test_the_global_random_state_is_untouched():
    before = torch.get_rng_state()
    balanced_labelled_indices(LABELS, 15, seed=3)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_unlabelled_images_are_all_the_others():
    chosen = balanced_labelled_indices(LABELS, 75, seed=0)  # every image of the scarcest class
    rest = unlabelled_indices(len(LABELS), chosen)
    assert len(rest) == 25 and not set(rest.tolist()) & set(chosen.tolist())
    assert torch.equal(torch.cat([chosen, rest]).sort().values, torch.arange(100))
    assert (LABELS[rest] != 1).all()


@pytest.mark.parametrize(
    ("num_labels", "why"),
    [
        (10, "must be a positive multiple of the 3 classes"),
        (0, "must be a positive multiple of the 3 classes"),
        (78, "asks for 26 images of each class, but class 1 has only 25 training images"),
    ],
)
def test_refusals_name_the_setting_in_one_line(num_labels, why):
    with pytest.raises(ValueError) as refused:
        balanced_labelled_indices(LABELS, num_labels, seed=0)
    assert isinstance(refused.value, ConfigError)
    assert str(refused.value) == f"dataset.num_labels={num_labels}: {why}"
