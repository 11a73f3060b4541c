#ifndef DSERVE_PARALLEL_MESH_LAYOUT_H_
#define DSERVE_PARALLEL_MESH_LAYOUT_H_

// The one conversion between the public wire form of a parallel layout,
// dserve.v1.MeshLayout (GetServerInfo's ServerInfo.mesh and ReplicaInfo.mesh,
// the Started event, the internal ReplicaStatus.mesh), and parallel's value
// form, MeshDegrees (the degrees a DeviceMesh is built from; a DeviceMesh
// adds the device of each rank, which no MeshLayout carries).
//
// Inside a process the layout is a MeshDegrees / DeviceMesh; it becomes a
// MeshLayout only where it leaves in a proto, and the string form
// (ParseMeshSpec / FormatMeshSpec) only on a command line or in a log.
//
// Free functions over values: no state, thread-safe, nothing blocks.

#include "absl/status/statusor.h"
#include "parallel/device_mesh.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::parallel {

// Every field of the result is set, dp included.
dserve::v1::MeshLayout MeshLayoutFromDegrees(const MeshDegrees& degrees);

// The degrees of `layout`; an unset field (0, proto3's default) means 1.
// INVALID_ARGUMENT naming the field and its value for a negative field, and
// for degrees that ValidateDegrees refuses.
absl::StatusOr<MeshDegrees> MeshDegreesFromLayout(
    const dserve::v1::MeshLayout& layout);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_MESH_LAYOUT_H_
