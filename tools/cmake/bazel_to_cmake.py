#!/usr/bin/env python3
"""Writes cmake/targets.cmake from the BUILD.bazel files, so the CMake build
(GPU machines without Bazel) mirrors the Bazel one target for target and the
two cannot drift: CI runs this with --check and fails when the checked-in file
differs from what the BUILD files say.

  python3 tools/cmake/bazel_to_cmake.py            # rewrite cmake/targets.cmake
  python3 tools/cmake/bazel_to_cmake.py --check    # exit 1 if it is stale

BUILD files are Starlark; the subset used here (cc_library, cc_binary,
cc_test, sh_test, sh_binary, genrule (one output, $< and $@), filegroup, proto_library, cc_proto_library, the
cc_grpc_library macro, glob, package, exports_files) is evaluated with
Python stand-ins. Each Bazel label //pkg/path:name becomes the CMake target
pkg_path__name; //third_party:x becomes dserve_tp_x (cmake/dependencies.cmake).
Targets that need gRPC or protobuf (directly or through a dependency) are
wrapped in if(DSERVE_WITH_GRPC), so DSERVE_WITH_GRPC=OFF builds the LibTorch
parts only (the GPU image has no gRPC C++). Targets tagged "manual" that need
CUDA are wrapped in if(DSERVE_WITH_CUDA).
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "cmake", "targets.cmake")
# Directories whose BUILD files are not part of the product (build plumbing).
SKIP_DIRS = {"third_party", "tools/build", ".git", "build"}
GRPC_THIRD_PARTY = {"grpc", "grpc_reflection", "protobuf", "health_cc_grpc",
                    "reflection_cc_grpc"}
CUDA_THIRD_PARTY = {"cuda", "nccl"}
# select({"//third_party:cuda_build": [...], "//conditions:default": []})
# is the one select() the BUILD files use: its CUDA deps become a
# target_link_libraries inside if(DSERVE_WITH_CUDA).
CUDA_SELECT_KEY = "//third_party:cuda_build"
CUDA_ONLY = "CUDA_ONLY:"
SIZE_TIMEOUT = {"small": 120, "medium": 300, "large": 900, "enormous": 3600}


def label_to_target(label, pkg):
    if label.startswith(":"):
        return (pkg, label[1:])
    if label.startswith("//"):
        body = label[2:]
        if ":" in body:
            p, n = body.split(":", 1)
        else:
            p, n = body, body.rsplit("/", 1)[-1]
        return (p, n)
    # A bare name in the same package.
    return (pkg, label)


def cmake_name(pkg, name):
    if pkg == "third_party":
        return "dserve_tp_" + name
    return pkg.replace("/", "_") + "__" + name


class Package:
    def __init__(self, pkg):
        self.pkg = pkg
        self.rules = []  # (kind, kwargs) in file order

    def env(self):
        def rule(kind):
            def f(**kw):
                self.rules.append((kind, kw))
            return f

        def glob(patterns, exclude=(), allow_empty=True):
            # Resolved by CMake at configure time (the files may be untracked
            # build products, e.g. trained weights): "dir/**" links the
            # folder, other patterns go to file(GLOB).
            return ["GLOB:" + p for p in patterns]

        def cc_grpc_library(name, srcs, deps, proto_deps=(), **kw):
            self.rules.append(("cc_grpc_library",
                               dict(name=name, srcs=srcs, deps=deps, **kw)))

        def load(*args, **kw):
            pass

        def select(branches):
            unknown = set(branches) - {CUDA_SELECT_KEY, "//conditions:default"}
            if unknown or branches.get("//conditions:default"):
                raise ValueError(f"{self.pkg}: unsupported select() {branches}")
            return [CUDA_ONLY + d for d in branches.get(CUDA_SELECT_KEY, [])]

        return {
            "cc_library": rule("cc_library"),
            "cc_binary": rule("cc_binary"),
            "cc_test": rule("cc_test"),
            "sh_test": rule("sh_test"),
            "sh_binary": rule("sh_binary"),
            "genrule": rule("genrule"),
            "py_test": rule("py_test"),
            "filegroup": rule("filegroup"),
            "proto_library": rule("proto_library"),
            "cc_proto_library": rule("cc_proto_library"),
            "cc_grpc_library": cc_grpc_library,
            "glob": glob,
            "load": load,
            "select": select,
            "package": lambda **kw: None,
            "exports_files": lambda *a, **kw: None,
            "alias": rule("alias"),
        }


def read_packages():
    pkgs = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        rel = "" if rel == "." else rel
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith("bazel-")
                             and os.path.join(rel, d).lstrip("/") not in SKIP_DIRS
                             and d not in (".git", "build"))
        if rel in SKIP_DIRS or "BUILD.bazel" not in filenames or rel == "":
            continue
        p = Package(rel)
        with open(os.path.join(dirpath, "BUILD.bazel")) as f:
            exec(compile(f.read(), os.path.join(rel, "BUILD.bazel"), "exec"), p.env())
        pkgs.append(p)
    return pkgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    pkgs = read_packages()

    rules = {}  # (pkg, name) -> (kind, kw)
    for p in pkgs:
        for kind, kw in p.rules:
            rules[(p.pkg, kw["name"])] = (kind, kw)

    def deps_of(key):
        kind, kw = rules[key]
        return [label_to_target(d, key[0]) for d in kw.get("deps", [])
                if not d.startswith(CUDA_ONLY)]

    memo = {}

    def needs(key, what):
        """Whether `key` needs gRPC/protobuf ('grpc') or CUDA ('cuda')."""
        if (key, what) in memo:
            return memo[(key, what)]
        memo[(key, what)] = False
        pkg, name = key
        result = False
        if pkg == "third_party":
            result = name in (GRPC_THIRD_PARTY if what == "grpc" else CUDA_THIRD_PARTY)
        elif key in rules:
            kind, kw = rules[key]
            if what == "grpc" and kind in ("proto_library", "cc_proto_library",
                                           "cc_grpc_library"):
                result = True
            else:
                deps = deps_of(key) + [label_to_target(d, pkg)
                                       for d in kw.get("data", [])
                                       if not d.startswith("//third_party")]
                result = any(needs(d, what) for d in deps)
        memo[(key, what)] = result
        return result

    def location(label, pkg):
        tp, tn = label_to_target(label, pkg)
        return f"{tp}/{tn}"

    def expand(arg, pkg):
        for fn in ("$(rootpath ", "$(location ", "$(execpath "):
            while fn in arg:
                i = arg.index(fn)
                j = arg.index(")", i)
                arg = arg[:i] + location(arg[i + len(fn):j], pkg) + arg[j + 1:]
        return arg

    def lst(items):
        return " ".join(items)

    lines = [
        "# GENERATED by tools/cmake/bazel_to_cmake.py from the BUILD.bazel files.",
        "# Do not edit: change the BUILD file and rerun the script (CI checks it).",
        "",
    ]
    for p in pkgs:
        out = []
        for kind, kw in p.rules:
            key = (p.pkg, kw["name"])
            tgt = cmake_name(*key)
            grpc = needs(key, "grpc")
            tags = list(kw.get("tags", []))
            cuda = needs(key, "cuda") or ("gpu" in tags)
            deps = [cmake_name(*label_to_target(d, p.pkg)) for d in kw.get("deps", [])
                    if not d.startswith(CUDA_ONLY)]
            cuda_deps = [cmake_name(*label_to_target(d[len(CUDA_ONLY):], p.pkg))
                         for d in kw.get("deps", []) if d.startswith(CUDA_ONLY)]
            srcs = [s for s in kw.get("srcs", [])]
            hdrs = kw.get("hdrs", [])
            data_targets = []
            src_data = []  # source files, linked into the runfiles tree
            for d in kw.get("data", []):
                dk = label_to_target(d, p.pkg)
                if dk in rules:
                    data_targets.append(cmake_name(*dk))
                elif dk[0] != "third_party":
                    src_data.append(f"{dk[0]}/{dk[1]}")
            if src_data:
                data_targets_opt = f" SRC_DATA {lst(src_data)}"
            else:
                data_targets_opt = ""
            body = []
            if kind == "cc_library":
                body.append(f"dserve_cc_library({tgt} PKG {p.pkg}"
                            f" SRCS {lst(srcs)} HDRS {lst(hdrs)}"
                            f" DEPS {lst(deps)}"
                            + (f" DEFINES {lst(kw['defines'])}" if kw.get("defines") else "")
                            + ")")
            elif kind == "cc_binary" and kw.get("linkshared"):
                # A shared library loaded at run time (dlopen), written where
                # Bazel's runfiles tree has it.
                body.append(f"dserve_cc_shared({tgt} PKG {p.pkg} NAME {kw['name']}"
                            f" SRCS {lst(srcs)} DEPS {lst(deps)})")
            elif kind in ("cc_binary", "cc_test"):
                fn = "dserve_cc_binary" if kind == "cc_binary" else "dserve_cc_test"
                extra = ""
                if kind == "cc_test":
                    size = kw.get("size", "medium")
                    # ctest runs Bazel's shards one after another.
                    timeout = SIZE_TIMEOUT[size] * kw.get("shard_count", 1)
                    labels = [size] + tags
                    targs = [expand(a, p.pkg) for a in kw.get("args", [])]
                    extra = (f" TIMEOUT {timeout} LABELS {lst(labels)}"
                             + (f" ARGS {lst(targs)}" if targs else ""))
                body.append(f"{fn}({tgt} PKG {p.pkg} NAME {kw['name']}"
                            f" SRCS {lst(srcs)} DEPS {lst(deps)}"
                            + (f" DATA {lst(data_targets)}" if data_targets else "")
                            + data_targets_opt + extra + ")")
            elif kind == "sh_test":
                size = kw.get("size", "medium")
                targs = [expand(a, p.pkg) for a in kw.get("args", [])]
                body.append(f"dserve_sh_test({tgt} PKG {p.pkg} NAME {kw['name']}"
                            f" SCRIPT {srcs[0]}"
                            + (f" DATA {lst(data_targets)}" if data_targets else "")
                            + data_targets_opt
                            + f" TIMEOUT {SIZE_TIMEOUT[size]} LABELS {lst([size] + tags)}"
                            + (f" ARGS {lst(targs)}" if targs else "") + ")")
            elif kind == "py_test":
                size = kw.get("size", "medium")
                targs = [expand(a, p.pkg) for a in kw.get("args", [])]
                body.append(f"dserve_py_test({tgt} PKG {p.pkg} NAME {kw['name']}"
                            f" MAIN {kw.get('main', srcs[0])}"
                            + (f" DATA {lst(data_targets)}" if data_targets else "")
                            + data_targets_opt
                            + f" TIMEOUT {SIZE_TIMEOUT[size]} LABELS {lst([size] + tags)}"
                            + (f" ARGS {lst(targs)}" if targs else "") + ")")
            elif kind == "filegroup":
                files = [x for x in srcs if not x.startswith("GLOB:")]
                dirs = [x[5:-3] for x in srcs if x.startswith("GLOB:") and x.endswith("/**")]
                globs = [x[5:] for x in srcs if x.startswith("GLOB:") and not x.endswith("/**")]
                body.append(f"dserve_filegroup({tgt} PKG {p.pkg}"
                            + (f" FILES {lst(files)}" if files else "")
                            + (f" DIRS {lst(dirs)}" if dirs else "")
                            + (f" GLOBS {lst(globs)}" if globs else "") + ")")
            elif kind == "cc_proto_library":
                proto_key = label_to_target(kw["deps"][0], p.pkg)
                pkind, pkw = rules[proto_key]
                # The cc_proto_library of each imported proto_library is
                # named <base>_cc_proto (the convention of proto/).
                pdeps = []
                for x in pkw.get("deps", []):
                    dp, dn = label_to_target(x, proto_key[0])
                    pdeps.append(cmake_name(dp, dn[:-len("_proto")] + "_cc_proto"))
                body.append(f"dserve_cc_proto({tgt} PKG {p.pkg}"
                            f" PROTO {lst(pkw['srcs'])} DEPS {lst(pdeps)})")
            elif kind == "genrule":
                # One source, one output, written under DSERVE_GEN (on every
                # target's include path) by the same shell command Bazel runs.
                if len(srcs) != 1 or len(kw["outs"]) != 1:
                    raise ValueError(f"{p.pkg}:{kw['name']}: genrule needs one src and one out")
                cmd = (kw["cmd"]
                       .replace("$<", f"${{CMAKE_SOURCE_DIR}}/{p.pkg}/{srcs[0]}")
                       .replace("$@", f"${{DSERVE_GEN}}/{p.pkg}/{kw['outs'][0]}"))
                cmd = cmd.replace("\\", "\\\\").replace('"', '\\"')
                body.append(f"dserve_genrule({tgt} PKG {p.pkg} OUT {kw['outs'][0]}"
                            f" SRC {srcs[0]} CMD \"{cmd}\")")
            elif kind == "cc_grpc_library":
                body.append(f"dserve_cc_grpc({tgt} PKG {p.pkg}"
                            f" PROTO {lst(srcs)} DEPS {lst(deps)})")
            else:
                # proto_library, alias: nothing to build on their own;
                # sh_binary: a script run from the tree (bazel run), nothing
                # for CMake to build.
                continue
            if kind in ("cc_library", "cc_binary", "cc_test"):
                for f in kw.get("hdrs", []) + kw.get("srcs", []):
                    for (gpkg, gname), (gkind, gkw) in rules.items():
                        if gkind == "genrule" and gpkg == p.pkg and f in gkw["outs"]:
                            body.append(f"add_dependencies({tgt} {cmake_name(gpkg, gname)})")
            if kw.get("local_defines") and kind in ("cc_binary", "cc_test"):
                body.append(f"target_compile_definitions({tgt} PRIVATE "
                            f"{lst(kw['local_defines'])})")
            if cuda_deps:
                scope = ("PRIVATE" if kind in ("cc_binary", "cc_test")
                         else "PUBLIC" if kw.get("srcs") else "INTERFACE")
                body += ["if(DSERVE_WITH_CUDA)",
                         f"  target_link_libraries({tgt} {scope} {lst(cuda_deps)})",
                         "endif()"]
            guard = []
            if grpc:
                guard.append("DSERVE_WITH_GRPC")
            if cuda:
                guard.append("DSERVE_WITH_CUDA")
            if guard:
                out.append(f"if({' AND '.join(guard)})")
                out.extend("  " + b for b in body)
                out.append("endif()")
            else:
                out.extend(body)
        if out:
            lines.append(f"# ---- //{p.pkg}")
            lines.extend(out)
            lines.append("")
    text = "\n".join(lines)
    if args.check:
        try:
            with open(OUT) as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            print(f"{OUT} is stale: run python3 tools/cmake/bazel_to_cmake.py",
                  file=sys.stderr)
            return 1
        print("cmake/targets.cmake matches the BUILD.bazel files")
        return 0
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
