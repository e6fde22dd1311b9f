"""The CUDA kernels (minicnn/backend/kernels.cu) and the GPU backend (gpu.py), checked on a machine without a GPU.

1. nvcc compiles every kernel, float and double, for sm_90 (Hopper, e.g. H100/H200): a syntax or type error fails.
2. NVRTC, the compiler CuPy really uses, accepts the file with gpu.py's name expressions (only where CuPy is
   installed; nvcc checks the same C++ everywhere else).
3. The same file compiled as C++ (tests/cuda_host) runs every kernel on the CPU, launched by gpu.py itself through a
   stand-in cupy, and must give what the numba kernels of cpu.py give: hypothesis-chosen shapes and windows,
   float32 and float64, and launch configurations down to a single thread (the grid-stride loops).
Real-GPU tests, which compare GPU and CPU results on a device, are in test_gpu.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import distinct_values, float_dtypes, window_cases
from cuda_host.emulator import (
    BACKEND_DIR,
    KERNELS_CU,
    FakeCupy,
    HostKernels,
    build_library,
    find_cxx,
    load_gpu_backend,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.backend import cpu
from minicnn.errors import DeviceError

NVCC_ARCH = "sm_90"
SOURCE = KERNELS_CU.read_text()


def kernel_list_in_source() -> list[str]:
    """The names listed in kernels.cu's MINICNN_KERNELS(X) macro."""
    body = re.search(r"#define MINICNN_KERNELS\(X\)(.*?)(?:\n\s*\n|\Z)", SOURCE, re.S).group(1)
    return re.findall(r"X\((\w+)\)", body)


# ---- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host_kernels() -> HostKernels:
    cxx = find_cxx()
    if cxx is None:
        pytest.skip("no C++ compiler (g++) to build the host emulation of kernels.cu")
    return HostKernels(build_library(cxx))


@pytest.fixture(scope="module")
def fake_cupy(host_kernels) -> FakeCupy:
    return FakeCupy(host_kernels)


@pytest.fixture(scope="module")
def gpu(fake_cupy):
    """minicnn/backend/gpu.py, running on the host-compiled kernels."""
    return load_gpu_backend(fake_cupy)


@contextmanager
def launch_config(gpu, threads: int, max_blocks: int):
    """Launch with `threads` per block and at most `max_blocks` blocks (fewer threads than elements: each loops)."""
    saved = gpu.THREADS_PER_BLOCK, gpu.MAX_BLOCKS
    gpu.THREADS_PER_BLOCK, gpu.MAX_BLOCKS = threads, max_blocks
    try:
        yield
    finally:
        gpu.THREADS_PER_BLOCK, gpu.MAX_BLOCKS = saved


# gpu.py's own configuration, then smaller ones where every thread handles several elements
launches = st.sampled_from([(256, 4096), (32, 2), (7, 3), (1, 1)])
seeds = st.integers(0, 2**32 - 1)
TOLERANCE = {np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-6}, np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-14}}
KERNEL_SETTINGS = settings(max_examples=100)


def window_args(case):
    return case["kernel"], case["stride"], case["pad"]


# ---- the source: one list of kernels, nvcc, NVRTC ----------------------------------------------------------------


def test_kernel_list_names_every_global_kernel_and_gpu_py_compiles_them_all(gpu):
    defined = re.findall(r"template <typename T>\s*__global__ void (\w+)\(", SOURCE)
    assert sorted(kernel_list_in_source()) == sorted(defined)
    assert list(gpu.KERNELS) == kernel_list_in_source()


def test_gpu_py_builds_one_module_from_kernels_cu_with_a_float_and_double_version_of_every_kernel(
    gpu, fake_cupy, host_kernels
):
    gpu.check_device()  # compiles the module
    (module,) = fake_cupy.modules
    assert module.code == SOURCE
    assert "-std=c++17" in module.options
    expected = sorted(f"{k}<{t}>" for k in kernel_list_in_source() for t in ("float", "double"))
    assert sorted(module.name_expressions) == expected
    assert sorted(host_kernels.names) == expected


def _find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


def test_nvcc_compiles_every_kernel_in_float_and_double(tmp_path):
    nvcc = _find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (install the CUDA toolkit to compile-check kernels.cu)")
    # Templates are only type-checked when instantiated: taking each kernel's address instantiates all of them.
    wrapper = tmp_path / "all_kernels.cu"
    wrapper.write_text(
        '#include "kernels.cu"\n'
        "#define MINICNN_ADDRESS(k) (const void*)&k<float>, (const void*)&k<double>,\n"
        "const void* minicnn_all_kernels[] = {MINICNN_KERNELS(MINICNN_ADDRESS)};\n"
    )
    cubin = tmp_path / "kernels.cubin"
    cmd = [nvcc, "-std=c++17", f"-arch={NVCC_ARCH}", "-cubin", "-Werror", "all-warnings"]
    cmd += ["-I", str(BACKEND_DIR), str(wrapper), "-o", str(cubin)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    binary = cubin.read_bytes()
    for kernel in kernel_list_in_source():
        for t in "fd":  # the Itanium-mangled name of kernel<float> / kernel<double>
            assert f"_Z{len(kernel)}{kernel}I{t}E".encode() in binary, f"{kernel}<{t}> missing from the cubin"


def test_nvrtc_compiles_kernels_cu_with_the_name_expressions_gpu_py_asks_for(gpu, fake_cupy):
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="CuPy is not installed (NVRTC check)")
    try:
        nvrtc.getVersion()
    except Exception as exc:  # CuPy without its NVRTC library
        pytest.skip(f"NVRTC cannot be loaded: {exc}")
    gpu.check_device()
    module = fake_cupy.modules[0]
    program = nvrtc.createProgram(module.code, "kernels.cu", [], [])
    for name in module.name_expressions:
        nvrtc.addNameExpression(program, name)
    try:
        nvrtc.compileProgram(program, [*module.options, "-arch=compute_90"])
    except Exception:
        pytest.fail(f"NVRTC rejected kernels.cu:\n{nvrtc.getProgramLog(program)}")
    for name in module.name_expressions:
        assert nvrtc.getLoweredName(program, name).startswith("_Z")


# ---- every kernel on the host against the numba kernels -----------------------------------------------------------


@KERNEL_SETTINGS
@given(case=window_cases(), dtype=float_dtypes, launch=launches, seed=seeds)
def test_im2col_copies_exactly_what_the_cpu_copies(gpu, case, dtype, launch, seed):
    x = np.random.default_rng(seed).standard_normal(case["shape"]).astype(dtype)
    with launch_config(gpu, *launch):
        got = gpu.im2col(gpu.xp.asarray(x), *window_args(case))
    np.testing.assert_array_equal(gpu.to_numpy(got), cpu.im2col(x, *window_args(case)))


@KERNEL_SETTINGS
@given(case=window_cases(), dtype=float_dtypes, launch=launches, seed=seeds)
def test_col2im_sums_the_same_windows_as_the_cpu(gpu, case, dtype, launch, seed):
    cols_shape = cpu.im2col(np.zeros(case["shape"], dtype), *window_args(case)).shape
    cols = np.random.default_rng(seed).standard_normal(cols_shape).astype(dtype)
    with launch_config(gpu, *launch):
        got = gpu.col2im(gpu.xp.asarray(cols), case["shape"], *window_args(case))
    want = cpu.col2im(cols, case["shape"], *window_args(case))
    np.testing.assert_allclose(gpu.to_numpy(got), want, **TOLERANCE[np.dtype(dtype)])


@KERNEL_SETTINGS
@given(case=window_cases(pool=True), dtype=float_dtypes, launch=launches, seed=seeds, ties=st.booleans())
def test_max_pool_forward_picks_the_same_first_maximum_as_the_cpu(gpu, case, dtype, launch, seed, ties):
    rng = np.random.default_rng(seed)
    if ties:  # a few integer values, so most windows hold tied maxima: the first one (row-major) must win
        x = rng.integers(-2, 2, case["shape"]).astype(dtype)
    else:  # all negative: padding, were it counted as 0, would win
        x = distinct_values(case["shape"], rng, dtype) - 2
    with launch_config(gpu, *launch):
        y, idx = gpu.max_pool_forward(gpu.xp.asarray(x), *window_args(case))
    y_cpu, idx_cpu = cpu.max_pool_forward(x, *window_args(case))
    np.testing.assert_array_equal(gpu.to_numpy(y), y_cpu)
    np.testing.assert_array_equal(gpu.to_numpy(idx), idx_cpu)
    assert gpu.to_numpy(idx).dtype == np.int32


@KERNEL_SETTINGS
@given(case=window_cases(pool=True), dtype=float_dtypes, launch=launches, seed=seeds, ties=st.booleans())
def test_max_pool_backward_gathers_what_the_cpu_scatters(gpu, case, dtype, launch, seed, ties):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 2, case["shape"]).astype(dtype) if ties else distinct_values(case["shape"], rng, dtype)
    _, idx = cpu.max_pool_forward(x, *window_args(case))
    gy = rng.standard_normal(idx.shape).astype(dtype)
    with launch_config(gpu, *launch):
        got = gpu.max_pool_backward(gpu.xp.asarray(gy), gpu.xp.asarray(idx), case["shape"], *window_args(case))
    want = cpu.max_pool_backward(gy, idx, case["shape"])
    np.testing.assert_allclose(gpu.to_numpy(got), want, **TOLERANCE[np.dtype(dtype)])


@KERNEL_SETTINGS
@given(case=window_cases(pool=True), dtype=float_dtypes, launch=launches, seed=seeds)
def test_avg_pool_forward_divides_by_the_full_window_like_the_cpu(gpu, case, dtype, launch, seed):
    x = np.random.default_rng(seed).standard_normal(case["shape"]).astype(dtype)
    with launch_config(gpu, *launch):
        got = gpu.avg_pool_forward(gpu.xp.asarray(x), *window_args(case))
    want = cpu.avg_pool_forward(x, *window_args(case))
    np.testing.assert_allclose(gpu.to_numpy(got), want, **TOLERANCE[np.dtype(dtype)])


@KERNEL_SETTINGS
@given(case=window_cases(pool=True), dtype=float_dtypes, launch=launches, seed=seeds)
def test_avg_pool_backward_gathers_what_the_cpu_scatters(gpu, case, dtype, launch, seed):
    y_shape = cpu.avg_pool_forward(np.zeros(case["shape"], dtype), *window_args(case)).shape
    gy = np.random.default_rng(seed).standard_normal(y_shape).astype(dtype)
    with launch_config(gpu, *launch):
        got = gpu.avg_pool_backward(gpu.xp.asarray(gy), case["shape"], *window_args(case))
    want = cpu.avg_pool_backward(gy, case["shape"], *window_args(case))
    np.testing.assert_allclose(gpu.to_numpy(got), want, **TOLERANCE[np.dtype(dtype)])


@KERNEL_SETTINGS
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple),
    rate=st.sampled_from([0.0, 0.1, 0.5, 0.9]) | st.floats(0.0, 0.99),
    dtype=float_dtypes,
    launch=launches,
    seed=seeds,
)
def test_dropout_mask_from_the_same_draws_equals_the_cpu_mask(gpu, shape, rate, dtype, launch, seed):
    with launch_config(gpu, *launch):
        got = gpu.dropout_mask(shape, rate, dtype, gpu.xp.random.default_rng(seed))
    want = cpu.dropout_mask(shape, rate, dtype, np.random.default_rng(seed))  # the fake draws with NumPy
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(gpu.to_numpy(got), want)


class FixedDraws:
    """A generator whose `random` returns given values (as device arrays when `to_device` is given)."""

    def __init__(self, values, to_device=None):
        self.values, self.to_device = np.asarray(values, np.float32), to_device

    def random(self, size, dtype):
        assert size == self.values.shape and dtype == np.float32
        return self.values if self.to_device is None else self.to_device(self.values)


@pytest.mark.parametrize("rate", [0.25, 0.7])
def test_dropout_keeps_a_draw_equal_to_the_rate_comparing_in_float32_like_the_cpu(gpu, rate):
    # 0.25 is exact in float32; float32(0.7) is just below 0.7, so comparing in double would drop it
    u = [np.float32(rate), np.nextafter(np.float32(rate), np.float32(0)), np.float32(0.99)]
    got = gpu.dropout_mask((3,), rate, np.float64, FixedDraws(u, gpu.xp.asarray))
    want = cpu.dropout_mask((3,), rate, np.float64, FixedDraws(u))
    np.testing.assert_array_equal(gpu.to_numpy(got), want)
    assert want[0] == want[2] == 1 / (1 - rate) and want[1] == 0


def test_non_contiguous_gradients_are_made_contiguous_before_a_kernel_sees_them(gpu):
    # concat's backward hands pooling a slice of a larger gradient; a kernel indexes raw memory
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    y_cpu, idx = cpu.max_pool_forward(x, (2, 2), (2, 2), (0, 0))
    wide = np.random.default_rng(0).standard_normal((2, 6, 2, 2)).astype(np.float32)
    gy = gpu.xp.asarray(wide)[:, ::2]  # every other channel: not contiguous
    got = gpu.max_pool_backward(gy, gpu.xp.asarray(idx), x.shape, (2, 2), (2, 2), (0, 0))
    want = cpu.max_pool_backward(np.ascontiguousarray(wide[:, ::2]), idx, x.shape)
    np.testing.assert_array_equal(gpu.to_numpy(got), want)


def test_an_empty_batch_launches_nothing_and_gives_empty_results(gpu, fake_cupy):
    before = len(fake_cupy.launches)
    x = gpu.xp.asarray(np.zeros((0, 3, 5, 5), np.float32))
    assert gpu.im2col(x, (3, 3), (1, 1), (1, 1)).shape == (27, 0)
    y, idx = gpu.max_pool_forward(x, (2, 2), (2, 2), (0, 0))
    assert y.shape == idx.shape == (0, 3, 2, 2)
    assert len(fake_cupy.launches) == before


def test_launches_use_gpu_py_block_size_and_cap_the_grid(gpu, fake_cupy):
    x = gpu.xp.asarray(np.zeros((1, 1, 40, 40), np.float32))
    with launch_config(gpu, 64, 5):
        gpu.avg_pool_forward(x, (1, 1), (1, 1), (0, 0))  # 1600 outputs: 25 blocks of 64 wanted, 5 allowed
        gpu.avg_pool_forward(x, (20, 20), (20, 20), (0, 0))  # 4 outputs: one block
    assert fake_cupy.launches[-2:] == [("avg_pool_forward<float>", 5, 64), ("avg_pool_forward<float>", 1, 64)]


def test_kernels_take_only_float32_and_float64(gpu):
    x = gpu.xp.asarray(np.zeros((1, 1, 4, 4), np.int32))
    with pytest.raises(TypeError, match="float32 or float64"):
        gpu.im2col(x, (2, 2), (1, 1), (0, 0))


def test_the_host_launcher_refuses_arguments_of_the_wrong_width(host_kernels):
    # the check that makes the emulation catch gpu.py passing an int64 where a kernel takes an int (or the reverse)
    u, mask = np.zeros(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(RuntimeError, match="argument 2 has 4 bytes, the kernel takes 8"):
        host_kernels.launch("dropout_mask<float>", 1, 1, (u, mask, np.int32(4), np.float32(0.5), np.float32(2)))
    with pytest.raises(RuntimeError, match="takes 5 arguments"):
        host_kernels.launch("dropout_mask<float>", 1, 1, (u, mask, np.int64(4)))


# ---- device errors: one line saying what is missing -------------------------------------------------------------


def test_without_cupy_importing_the_gpu_backend_says_to_install_it():
    with pytest.raises(ImportError, match=r"^CuPy is not installed \(pip install minicnn\[gpu\]\)$"):
        load_gpu_backend(None)


def test_without_cupy_the_gpu_device_is_a_one_line_device_error(monkeypatch):
    import sys

    from minicnn import backend

    monkeypatch.setitem(sys.modules, "cupy", None)  # what `import cupy` meets where CuPy is not installed
    monkeypatch.delitem(sys.modules, "minicnn.backend.gpu", raising=False)
    monkeypatch.delattr(backend, "gpu", raising=False)  # the submodule, where an earlier test imported it
    monkeypatch.setattr(backend, "_gpu", None)
    with pytest.raises(DeviceError) as err:
        backend.for_device("gpu")
    assert "CuPy is not installed (pip install minicnn[gpu])" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("count", "error", "message"),
    [
        (
            1,
            RuntimeError("cudaErrorNoDevice: no CUDA-capable\ndevice is detected"),
            "no CUDA device: cudaErrorNoDevice:",
        ),
        (0, None, "no CUDA device: the CUDA driver reports 0 devices"),
    ],
)
def test_without_a_device_check_device_says_no_cuda_device_in_one_line(host_kernels, count, error, message):
    gpu = load_gpu_backend(FakeCupy(host_kernels, device_count=count, device_error=error))
    with pytest.raises(DeviceError) as err:
        gpu.check_device()
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_asking_for_a_gpu_index_the_machine_lacks_names_it(gpu):
    with pytest.raises(DeviceError, match=r"no CUDA device gpu\(1\): this machine has 1"):
        gpu.use_device(1)
