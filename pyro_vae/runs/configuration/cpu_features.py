"""Whether this CPU multiplies bfloat16 natively, read from Linux's ``/proc/cpuinfo``.

``trainer.precision=bf16-mixed`` on a CPU without native bfloat16 dot products is emulated: measured
5x to 18x slower than float32 (36.2 against 7.4 ms a step at batch 20, 1,460 against 81.9 at 1,024, on
an AVX2 AMD EPYC; docs/performance.md, "Mixed precision"), so such a CPU refuses it, as a GPU without
bfloat16 arithmetic does. Native: x86 ``avx512_bf16`` (Intel Cooper Lake, Sapphire Rapids and later
Xeons, AMD Zen 4 and later) or ``amx_bf16`` (Intel Sapphire Rapids and later); Arm ``bf16`` (Armv8.6-A
and cores that add it earlier, e.g. Neoverse V1 in AWS Graviton 3). Where the flags cannot be read (not
Linux, or an architecture whose cpuinfo names none of these lists) nothing is refused.
"""

from typing import FrozenSet, NamedTuple, Optional

# Read through :func:`cpu_flags` only; tests point it at a file of their own.
CPUINFO = "/proc/cpuinfo"


class CpuFlags(NamedTuple):
    """The feature list of the first processor in ``/proc/cpuinfo``: ``field`` is the line it came from,
    ``flags`` on x86, ``Features`` on Arm, which name bfloat16 differently (``BF16_FLAGS``)."""

    field: str
    flags: FrozenSet[str]
    model: Optional[str]  # x86's "model name"; Arm's cpuinfo has none


# The flags that mean native bfloat16 dot products, by the cpuinfo field that lists them.
BF16_FLAGS = {"flags": ("avx512_bf16", "amx_bf16"), "Features": ("bf16",)}


def cpu_flags() -> Optional[CpuFlags]:
    """This CPU's feature flags from :data:`CPUINFO`, or None where it cannot be read or lists neither
    x86's ``flags`` nor Arm's ``Features``."""
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        key = key.strip()
        if colon and key not in fields:  # the first processor's
            fields[key] = value.strip()
    field = next((name for name in BF16_FLAGS if name in fields), None)
    if field is None:
        return None
    return CpuFlags(field, frozenset(fields[field].split()), fields.get("model name") or None)


def bf16_refusal() -> Optional[str]:
    """The line refusing ``trainer.precision=bf16-mixed`` on this CPU, or None where it has native
    bfloat16 dot products or its flags cannot be read."""
    cpu = cpu_flags()
    if cpu is None:
        return None
    wanted = BF16_FLAGS[cpu.field]
    if cpu.flags.intersection(wanted):
        return None
    lacks = " and ".join(wanted)
    return (
        f"trainer.precision=bf16-mixed: {cpu.model or 'this CPU'} has no native bfloat16 dot products (its "
        f"/proc/cpuinfo {cpu.field} lack {lacks}), so bfloat16 is emulated, measured 5x to 18x slower than float32; "
        "use trainer.precision=32-true"
    )
