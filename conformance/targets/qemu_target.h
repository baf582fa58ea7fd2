// The QEMU targets: an emulated IOMMU of Debian's QEMU driven through qtest, with edu devices
// behind it issuing the scenario's accesses (conformance/qemu/). One QEMU per scenario.
#pragma once

#include "runner/target.h"

#include <memory>

namespace iommuspec::conformance {

// qemu-system-aarch64 -M virt,iommu=smmuv3 (area smmuv3). targets/qemu_smmuv3.cpp.
std::unique_ptr<Target> make_qemu_smmuv3_target();
// qemu-system-x86_64 -M q35 -device intel-iommu (area vtd; legacy or scalable mode per
// scenario). targets/qemu_vtd.cpp.
std::unique_ptr<Target> make_qemu_vtd_target();

} // namespace iommuspec::conformance
