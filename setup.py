"""Declares fastgrad's Cython extensions; metadata lives in pyproject.toml."""
import os
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "embedsignature": True,
}

# Flags per compiler family. No FMA contraction, so results are the same on every platform
# and match Python's float arithmetic bit for bit. No builtin pow: gcc would rewrite
# pow(x, -1.0) as 1.0 / x, which differs from libm's pow (what Python's x ** -1 calls) in the
# last bit for some x.
GCC_LIKE_FLAGS = ["-O3", "-ffp-contract=off", "-fno-builtin-pow"]
MSVC_FLAGS = ["/O2", "/fp:precise"]
# FASTGRAD_SANITIZE=1 (gcc/clang; .ci/sanitize): replaces -O3, keeps the two flags above.
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]


class BuildExt(build_ext):
    """Adds the flags of the compiler actually in use (gcc/clang or MSVC), and compiles the
    extensions in parallel (one per core) unless `-j`/`--parallel` says otherwise."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        flags = list(MSVC_FLAGS if msvc else GCC_LIKE_FLAGS)
        # Local experiments only: never for wheels (auditwheel cannot see AVX instructions).
        if os.environ.get("FASTGRAD_NATIVE") == "1" and not msvc:
            flags.append("-march=native")
        # .ci/sanitize: AddressSanitizer + UndefinedBehaviorSanitizer, for testing only (the
        # extensions then need libasan preloaded into an uninstrumented python).
        sanitize = os.environ.get("FASTGRAD_SANITIZE") == "1" and not msvc
        if sanitize:
            flags = [f for f in flags if not f.startswith("-O")] + SANITIZE_FLAGS
        for ext in self.extensions:
            own = list(flags)
            if ext.name == "fastgrad.optim._kernels" and not msvc:
                # sqrt without errno: gcc/clang vectorise Adam's square root (still correctly
                # rounded, the same bits as np.sqrt); its arguments are never negative
                own.append("-fno-math-errno")
            if ext.name == "fastgrad._tensor.loops" and self.compiler.compiler_type == "unix" \
                    and sys.platform.startswith("linux"):
                # Each loop starts a 64-byte block, so a short vectorised loop never straddles
                # two: where the linker happens to place one otherwise moved relu's speed by
                # ~30% on (8, 1280) on x86-64 (benchmarks/bench_tensor.py, relu row).
                own.append("-falign-loops=64")
            ext.extra_compile_args = own + list(ext.extra_compile_args or [])
            if sanitize:
                ext.extra_link_args = SANITIZE_FLAGS[:1] + list(ext.extra_link_args or [])
        super().build_extensions()


def extensions():
    """One extension per .pyx file under fastgrad/, named by its path (fastgrad._scalar.value)."""
    sources = sorted(Path("fastgrad").rglob("*.pyx"))
    return [Extension(".".join(src.with_suffix("").parts), [str(src)]) for src in sources]


setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives=COMPILER_DIRECTIVES,
        # FASTGRAD_ANNOTATE=1 writes an .html beside each .pyx (cython -a) with the real build's directives
        annotate=os.environ.get("FASTGRAD_ANNOTATE") == "1",
        force=os.environ.get("FASTGRAD_ANNOTATE") == "1",
    ),
    cmdclass={"build_ext": BuildExt},
)
