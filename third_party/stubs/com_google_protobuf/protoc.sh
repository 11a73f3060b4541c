#!/bin/sh
# Debian's protoc stands in for the one @com_google_protobuf would build.
exec /usr/bin/protoc "$@"
