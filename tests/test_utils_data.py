"""fastgrad.utils.data against torch.utils.data: datasets, samplers, collation, DataLoader."""
import collections
import warnings

import numpy as np
import pytest

import fastgrad
import fastgrad.utils.data as fud

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparisons skipped")
tud = torch.utils.data


def same_error(ours, theirs):
    with pytest.raises(Exception) as their_exc:
        theirs()
    with pytest.raises(their_exc.type):
        ours()


def as_plain(x):
    """A batch as nested Python structures of (dtype name, values) for comparison."""
    if isinstance(x, (fastgrad.Tensor, torch.Tensor)):
        arr = x.numpy() if isinstance(x, fastgrad.Tensor) else x.detach().numpy()
        return ("tensor", np.dtype(arr.dtype).name, arr.shape, arr.tolist())
    if isinstance(x, dict):
        return (type(x).__name__, {k: as_plain(v) for k, v in x.items()})
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return (type(x).__name__, [as_plain(v) for v in x])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [as_plain(v) for v in x])
    return x


Point = collections.namedtuple("Point", "x y")

BATCHES = [
    [1, 2, 3], [1.5, 2.5], [True, False], [1, 2.5], [2.5, 1],
    [np.float32(1.0), np.float32(2.0)], [np.int64(1), np.int64(2)], [np.bool_(True)],
    [np.array(1.0), np.array(2.0)], [np.array([1, 2]), np.array([3, 4])],
    [np.array([[1.5]], dtype=np.float32), np.array([[2.5]], dtype=np.float32)],
    [(1, 2.0), (3, 4.0)], [[1, 2.0], [3, 4.0]], [{"a": 1, "b": [1.0, 2.0]}, {"a": 2, "b": [3.0, 4.0]}],
    [collections.OrderedDict(x=1), collections.OrderedDict(x=2)],
    ["a", "b"], [b"a", b"b"], [Point(1, 2.0), Point(3, 4.0)],
    [("text", 1, np.zeros(2)), ("more", 2, np.ones(2))],
]


@pytest.mark.parametrize("batch", BATCHES, ids=repr)
def test_default_collate_as_torch(batch):
    assert as_plain(fud.default_collate(batch)) == as_plain(tud.default_collate(batch))


def test_default_collate_tensors_as_torch():
    data = [[1.0, 2.0], [3.0, 4.0]]
    ours = fud.default_collate([fastgrad.tensor(r) for r in data])
    theirs = tud.default_collate([torch.tensor(r) for r in data])
    assert as_plain(ours) == as_plain(theirs)
    ours = fud.default_collate([(fastgrad.tensor(r), 1) for r in data])
    theirs = tud.default_collate([(torch.tensor(r), 1) for r in data])
    assert as_plain(ours) == as_plain(theirs)
    ints = fud.default_collate([fastgrad.tensor(3), fastgrad.tensor(4)])
    assert as_plain(ints) == as_plain(tud.default_collate([torch.tensor(3), torch.tensor(4)]))


def test_default_collate_records_when_samples_require_grad():
    a = fastgrad.tensor([1.0, 2.0], requires_grad=True)
    batch = fud.default_collate([a, fastgrad.tensor([3.0, 4.0])])
    assert batch.requires_grad
    (batch * batch).sum().backward()
    np.testing.assert_allclose(np.asarray(a.grad), [2.0, 4.0])


@pytest.mark.parametrize("batch", [[None, None], [np.array(["a"]), np.array(["b"])],
                                   [[1, 2], [3]], [], [object()]])
def test_default_collate_errors_as_torch(batch):
    same_error(lambda: fud.default_collate(batch), lambda: tud.default_collate(batch))
    same_error(lambda: fud.default_collate([fastgrad.zeros(2), fastgrad.zeros(3)]),
               lambda: tud.default_collate([torch.zeros(2), torch.zeros(3)]))


@pytest.mark.parametrize("data", [np.array([1.0, 2.0]), np.float64(2.0), (np.float64(2.0), 1),
                                  [np.array([1, 2]), 3, "a"], {"k": np.array([True])}, 5, "s"],
                         ids=repr)
def test_default_convert_as_torch(data):
    assert as_plain(fud.default_convert(data)) == as_plain(tud.default_convert(data))


# ---------------------------------------------------------------------------------------------
# Datasets


def test_tensor_dataset():
    x, y = fastgrad.arange(12.0).reshape(6, 2), fastgrad.tensor([0, 1, 0, 1, 1, 0])
    ds = fud.TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[2]
    assert xi.numpy().tolist() == [4.0, 5.0] and yi.item() == 0
    with pytest.raises(AssertionError, match="Size mismatch"):
        fud.TensorDataset(fastgrad.zeros(3), fastgrad.zeros(4))


def test_subset_concat_and_add():
    base = list(range(10))
    sub = fud.Subset(base, [7, 2, 5])
    assert len(sub) == 3 and [sub[i] for i in range(3)] == [7, 2, 5]

    class Numbers(fud.Dataset):
        def __init__(self, values):
            self.values = values

        def __getitem__(self, i):
            return self.values[i]

        def __len__(self):
            return len(self.values)

    both = Numbers([1, 2]) + Numbers([3, 4, 5])
    assert isinstance(both, fud.ConcatDataset) and len(both) == 5
    assert [both[i] for i in range(5)] == [1, 2, 3, 4, 5] and both[-1] == 5
    assert both.cumulative_sizes == tud.ConcatDataset([[1, 2], [3, 4, 5]]).cumulative_sizes
    same_error(lambda: both[-6], lambda: tud.ConcatDataset([[1, 2], [3, 4, 5]])[-6])
    with pytest.raises(IndexError):
        both[5]
    with pytest.raises(NotImplementedError):
        fud.Dataset()[0]


@pytest.mark.parametrize("n, lengths", [(10, [3, 7]), (10, [0.3, 0.7]), (10, [0.33, 0.33, 0.34]),
                                        (10, [0.1, 0.9]), (3, [0.1, 0.9]), (7, [0.5, 0.5]),
                                        (5, [5, 0])])
def test_random_split_lengths_as_torch(n, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fud.random_split(range(n), lengths, generator=fastgrad.Generator().manual_seed(0))
        theirs = tud.random_split(range(n), lengths)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert sorted(i for s in ours for i in s) == list(range(n))


@pytest.mark.parametrize("lengths", [[3, 3], [0.5, 0.6], [-0.5, 1.5], [0.5, 0.25]])
def test_random_split_errors_as_torch(lengths):
    same_error(lambda: fud.random_split(range(10), lengths),
               lambda: tud.random_split(range(10), lengths))


def test_random_split_is_seeded_and_warns_on_empty_splits():
    a = [list(s) for s in fud.random_split(range(20), [5, 15],
                                           generator=fastgrad.Generator().manual_seed(4))]
    b = [list(s) for s in fud.random_split(range(20), [5, 15],
                                           generator=fastgrad.Generator().manual_seed(4))]
    assert a == b and a[0] != list(range(5))
    fastgrad.manual_seed(1)
    c = [list(s) for s in fud.random_split(range(20), [5, 15])]
    fastgrad.manual_seed(1)
    assert c == [list(s) for s in fud.random_split(range(20), [5, 15])]
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        fud.random_split(range(2), [1.0, 0.0])


# ---------------------------------------------------------------------------------------------
# Samplers


def test_samplers():
    assert list(fud.SequentialSampler(range(4))) == [0, 1, 2, 3]
    g = fastgrad.Generator().manual_seed(0)
    perm = list(fud.RandomSampler(range(10), generator=g))
    assert sorted(perm) == list(range(10)) and perm != list(range(10))
    assert list(fud.RandomSampler(range(10), generator=g)) != perm     # the generator moved on
    more = list(fud.RandomSampler(range(5), num_samples=12, generator=g))
    assert len(more) == 12 and sorted(more[:5]) == list(range(5)) and sorted(more[5:10]) == list(range(5))
    drawn = list(fud.RandomSampler(range(3), replacement=True, num_samples=3000, generator=g))
    assert set(drawn) == {0, 1, 2} and len(fud.RandomSampler(range(3), True, 3000)) == 3000
    sub = list(fud.SubsetRandomSampler([10, 20, 30], generator=g))
    assert sorted(sub) == [10, 20, 30]
    assert list(fud.BatchSampler(range(5), 2, False)) == [[0, 1], [2, 3], [4]]
    assert list(fud.BatchSampler(range(5), 2, True)) == [[0, 1], [2, 3]]
    assert len(fud.BatchSampler(range(5), 2, False)) == 3
    assert len(fud.BatchSampler(range(5), 2, True)) == 2


@pytest.mark.parametrize("ours, theirs", [
    (lambda: fud.BatchSampler(range(5), 0, False), lambda: tud.BatchSampler(range(5), 0, False)),
    (lambda: fud.BatchSampler(range(5), 2, 1), lambda: tud.BatchSampler(range(5), 2, 1)),
    (lambda: fud.RandomSampler(range(5), num_samples=0),
     lambda: tud.RandomSampler(range(5), num_samples=0)),
    (lambda: fud.RandomSampler(range(5), replacement=1),
     lambda: tud.RandomSampler(range(5), replacement=1)),
    (lambda: fud.RandomSampler([]), lambda: tud.RandomSampler([])),
])
def test_sampler_errors_as_torch(ours, theirs):
    same_error(ours, theirs)


# ---------------------------------------------------------------------------------------------
# DataLoader


def loaded(loader):
    return [as_plain(b) for b in loader]


@pytest.mark.parametrize("kwargs", [dict(), dict(batch_size=3), dict(batch_size=3, drop_last=True),
                                    dict(batch_size=None), dict(batch_size=10),
                                    dict(batch_sampler=[[0, 4], [1]])])
def test_dataloader_batches_as_torch(kwargs):
    samples = [(i, float(i) / 2, np.full(2, i, dtype=np.float32)) for i in range(7)]
    ours = fud.DataLoader(samples, **kwargs)
    theirs = tud.DataLoader(samples, **kwargs)
    assert len(ours) == len(theirs)
    assert loaded(ours) == loaded(theirs)


def test_dataloader_over_a_tensor_dataset_as_torch():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10) % 3
    ours = fud.DataLoader(fud.TensorDataset(fastgrad.from_numpy(x), fastgrad.from_numpy(y)),
                          batch_size=4)
    theirs = tud.DataLoader(tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                            batch_size=4)
    assert loaded(ours) == loaded(theirs)
    # the one-index-per-tensor batching gives what collating the samples gives
    slow = fud.DataLoader(fud.TensorDataset(fastgrad.from_numpy(x), fastgrad.from_numpy(y)),
                          batch_size=4, collate_fn=lambda b: fud.default_collate(b))
    assert loaded(ours) == loaded(slow)


def test_shuffle_reshuffles_each_epoch_and_follows_the_generator():
    data = list(range(20))
    loader = fud.DataLoader(data, batch_size=5, shuffle=True,
                            generator=fastgrad.Generator().manual_seed(3))
    epoch1 = sum((b.tolist() for b in loader), [])
    epoch2 = sum((b.tolist() for b in loader), [])
    assert sorted(epoch1) == data and sorted(epoch2) == data and epoch1 != epoch2
    again = fud.DataLoader(data, batch_size=5, shuffle=True,
                           generator=fastgrad.Generator().manual_seed(3))
    assert sum((b.tolist() for b in again), []) == epoch1
    # without a generator, manual_seed fixes the order
    fastgrad.manual_seed(5)
    a = sum((b.tolist() for b in fud.DataLoader(data, batch_size=4, shuffle=True)), [])
    fastgrad.manual_seed(5)
    b = sum((b.tolist() for b in fud.DataLoader(data, batch_size=4, shuffle=True)), [])
    assert a == b and a != data


def test_iterable_dataset():
    class Stream(fud.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    class TorchStream(tud.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    for kwargs in [dict(batch_size=3), dict(batch_size=3, drop_last=True), dict(batch_size=None)]:
        assert loaded(fud.DataLoader(Stream(), **kwargs)) == loaded(
            tud.DataLoader(TorchStream(), **kwargs))
    same_error(lambda: len(fud.DataLoader(Stream())), lambda: len(tud.DataLoader(TorchStream())))
    same_error(lambda: fud.DataLoader(Stream(), shuffle=True),
               lambda: tud.DataLoader(TorchStream(), shuffle=True))

    class Sized(fud.IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    assert len(fud.DataLoader(Sized(), batch_size=3)) == 3
    assert len(fud.DataLoader(Sized(), batch_size=3, drop_last=True)) == 2


@pytest.mark.parametrize("kwargs", [
    dict(batch_size=0), dict(batch_size=-1), dict(batch_size=2.0), dict(num_workers=-1),
    dict(shuffle=True, sampler=[0, 1]), dict(batch_size=2, batch_sampler=[[0, 1]]),
    dict(batch_size=None, drop_last=True), dict(timeout=-1), dict(prefetch_factor=2),
    dict(persistent_workers=True)])
def test_dataloader_argument_errors_as_torch(kwargs):
    same_error(lambda: fud.DataLoader(range(5), **kwargs),
               lambda: tud.DataLoader(range(5), **kwargs))


def test_custom_collate_sampler_and_workers():
    loader = fud.DataLoader(range(6), batch_size=2, collate_fn=lambda b: sum(b))
    assert list(loader) == [1, 5, 9]
    loader = fud.DataLoader(range(6), sampler=[5, 4, 3], batch_size=2)
    assert [b.tolist() for b in loader] == [[5, 4], [3]]
    # workers are accepted; the batches are the same as without them
    with_workers = fud.DataLoader(range(6), batch_size=4, num_workers=2, prefetch_factor=2,
                                  persistent_workers=True)
    assert [b.tolist() for b in with_workers] == [[0, 1, 2, 3], [4, 5]]
    assert fud.get_worker_info() is None
    with pytest.warns(UserWarning, match="pin_memory"):
        fud.DataLoader(range(3), pin_memory=True)


def test_tqdm_works_on_a_dataloader():
    tqdm = pytest.importorskip("tqdm").tqdm
    loader = fud.DataLoader(fud.TensorDataset(fastgrad.zeros(10, 2)), batch_size=3)
    import io
    out = io.StringIO()
    bar = tqdm(loader, file=out)
    batches = list(bar)
    assert bar.total == 4 and len(batches) == 4
    assert "4/4" in out.getvalue()


def test_training_loop_with_a_dataloader():
    """A PyTorch-style script: linear regression fitted with minibatches of a shuffled
    TensorDataset."""
    fastgrad.manual_seed(0)
    x = fastgrad.randn(256, 3)
    true_w = fastgrad.tensor([[2.0], [-1.0], [0.5]])
    y = x @ true_w + 0.3
    loader = fud.DataLoader(fud.TensorDataset(x, y), batch_size=32, shuffle=True)
    w = fastgrad.zeros(3, 1, requires_grad=True)
    b = fastgrad.zeros(1, requires_grad=True)
    for epoch in range(30):
        for xb, yb in loader:
            loss = ((xb @ w + b - yb) ** 2).mean()
            loss.backward()
            with fastgrad.no_grad():
                w -= 0.1 * w.grad
                b -= 0.1 * b.grad
            w.grad.zero_()
            b.grad.zero_()
    np.testing.assert_allclose(w.detach().numpy().ravel(), [2.0, -1.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(b.detach().numpy(), [0.3], atol=1e-3)
