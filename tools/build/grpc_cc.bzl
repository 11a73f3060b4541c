"""cc_grpc_library: gRPC C++ service stubs from a .proto, with Debian's
grpc_cpp_plugin. Message classes come from a native cc_proto_library passed in
`deps`; this rule adds only the *.grpc.pb.{h,cc} files."""

def cc_grpc_library(name, srcs, deps, proto_deps = [], visibility = None, **kwargs):
    """Generates and compiles the gRPC stubs of one .proto file.

    Args:
      name: target name of the resulting cc_library.
      srcs: a one-element list: the .proto in this package.
      deps: cc_proto_library targets (the messages) and other cc deps.
      proto_deps: .proto files imported by srcs (so protoc can read them).
      visibility: as usual.
      **kwargs: passed to the cc_library.
    """
    if len(srcs) != 1:
        fail("cc_grpc_library takes exactly one .proto in srcs")
    proto = srcs[0]
    base = proto[:-len(".proto")]
    repo = native.repository_name()
    pkg = native.package_name()
    repo_root = "." if repo == "@" else "external/" + repo[1:]
    out_root = "$(GENDIR)" if repo == "@" else "$(GENDIR)/external/" + repo[1:]
    native.genrule(
        name = name + "_codegen",
        srcs = srcs + proto_deps,
        outs = [base + ".grpc.pb.h", base + ".grpc.pb.cc"],
        tools = ["@com_google_protobuf//:protoc"],
        cmd = ("$(location @com_google_protobuf//:protoc) " +
               "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin " +
               "--grpc_out=%s -I%s -I. $(location %s)") % (out_root, repo_root, proto),
        visibility = ["//visibility:private"],
    )
    native.cc_library(
        name = name,
        srcs = [base + ".grpc.pb.cc"],
        hdrs = [base + ".grpc.pb.h"],
        deps = deps + ["@dserve//third_party:grpc"],
        visibility = visibility,
        **kwargs
    )
