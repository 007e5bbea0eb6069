"""A fake NVML with pynvml's interface, for tests, the fleet simulator and trying the agent without a GPU.

``FakeNvml`` (in ``nvml``, its NVML functions in ``functions``) runs over the simulated devices of ``devices``,
shaped like the GPU models and node profiles of ``models``.
"""

from devtools.fake_nvml.devices import FakeClock, FakeEventData, FakeGpu, FakeMigDevice
from devtools.fake_nvml.models import GPU_MODELS, PROFILES, GpuModel, MigLayout, Profile
from devtools.fake_nvml.nvml import FakeNvml

__all__ = [
    "GPU_MODELS",
    "PROFILES",
    "FakeClock",
    "FakeEventData",
    "FakeGpu",
    "FakeMigDevice",
    "FakeNvml",
    "GpuModel",
    "MigLayout",
    "Profile",
]
