# Here, once per session, from the repo root: the wheels the device machine lacks and CIFAR-10 in three
# parts of <= 57 MB (one call carries at most 64 MiB with the working tree). Both folders are git-ignored
# through .git/info/exclude, with .devrun (a copy of this folder).
set -e
grep -qx '/.whl/' .git/info/exclude || printf '/.whl/\n/.devdata/\n/.devrun/\n' >> .git/info/exclude
mkdir -p .whl .devdata/p1 .devdata/p2 .devdata/p3 .devrun
cp tools/device/*.sh tools/device/*.py .devrun/
pip_dl() { .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "$@"; }
pip_dl hydra-core==1.3.8 omegaconf==2.3.1 hydra-joblib-launcher==1.2.0
.venv/bin/python -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # sdist only on PyPI
S=${BNOPT_DATA:-../shared/data/cifar10}
cp "$S"/test.npz "$S"/train_1.npz "$S"/README.md "$S"/SHA256SUMS .devdata/p1/
cp "$S"/train_2.npz "$S"/train_3.npz .devdata/p2/
cp "$S"/train_4.npz "$S"/train_5.npz .devdata/p3/
du -sh .whl .devdata/*
