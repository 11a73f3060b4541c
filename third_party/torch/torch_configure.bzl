"""Maps a LibTorch installation into @libtorch.

Debian's libtorch-dev (headers under /usr/include, libraries under
/usr/lib/<triplet>) is the default. Set DSERVE_LIBTORCH to the root of another
LibTorch (an unpacked libtorch zip, or site-packages/torch of a CUDA PyTorch
wheel: both have include/ and lib/) for GPU builds.
"""

def _first_existing(rctx, candidates):
    for c in candidates:
        if rctx.path(c).exists:
            return c
    return None

def _torch_configure_impl(rctx):
    root = rctx.os.environ.get("DSERVE_LIBTORCH", "/usr")
    include = root + "/include"
    api_include = include + "/torch/csrc/api/include"
    if not rctx.path(api_include + "/torch/torch.h").exists:
        fail("DSERVE_LIBTORCH=%s has no include/torch/csrc/api/include/torch/torch.h" % root)
    libdir = _first_existing(rctx, [
        root + "/lib/libtorch.so",
        root + "/lib/x86_64-linux-gnu/libtorch.so",
        root + "/lib/aarch64-linux-gnu/libtorch.so",
    ])
    if libdir == None:
        fail("DSERVE_LIBTORCH=%s has no lib/libtorch.so" % root)
    libdir = libdir[:-len("/libtorch.so")]

    # Header trees are linked in so Bazel can declare them; /usr/include is
    # a compiler built-in directory, others are added with -isystem.
    rctx.symlink(api_include, "api_include")
    for d in ["torch", "ATen", "c10", "caffe2"]:
        if rctx.path(include + "/" + d).exists:
            rctx.symlink(include + "/" + d, "include/" + d)
    has_cuda = rctx.path(libdir + "/libtorch_cuda.so").exists
    libs = ["-ltorch", "-ltorch_cpu", "-lc10"]
    if has_cuda:
        libs = ["-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed"] + libs
    rctx.template("BUILD.bazel", rctx.attr._build_tpl, {
        "%{libdir}": libdir,
        "%{libs}": repr(libs),
        "%{has_cuda}": "True" if has_cuda else "False",
    })

torch_configure = repository_rule(
    implementation = _torch_configure_impl,
    environ = ["DSERVE_LIBTORCH"],
    attrs = {"_build_tpl": attr.label(default = "//third_party/torch:libtorch.BUILD.tpl")},
    local = True,
)
