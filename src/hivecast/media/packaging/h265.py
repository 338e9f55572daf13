"""The little of H.265 the packager reads itself: the profile, tier and level (ITU-T H.265 7.3.3)
that make the RFC 6381 codecs string (ISO/IEC 14496-15 E.3: `hvc1.1.6.L93.B0`), and the picture
size from a sequence parameter set (7.3.2.2.1), for sizing live ladder rungs of an HEVC source.

The same profile_tier_level fields sit in an hvcC record (14496-15 8.3.3.1), which is where the
packager reads them for the init segments PyAV writes; both paths format the string here.
Bounded like the H.264 reader: every read is checked and garbage raises SpsError.
"""

from __future__ import annotations

from dataclasses import dataclass

from hivecast.media.packaging.h264 import BitReader, SpsError, unescape

SPS_NAL_TYPE = 33
MAX_SUB_LAYERS = 7


@dataclass(frozen=True, slots=True)
class ProfileTierLevel:
    profile_space: int  # 0-3; 1-3 are written as A, B, C
    tier: int  # 0 Main, 1 High
    profile_idc: int
    compatibility: int  # general_profile_compatibility_flag[0..31], flag 0 in the most significant bit
    constraints: bytes  # the 48 bits from general_progressive_source_flag on
    level_idc: int  # 30 x the level number

    def codecs(self, sample_entry: str = "hvc1") -> str:
        space = "" if self.profile_space == 0 else "ABC"[self.profile_space - 1]
        # The compatibility flags are written in reverse bit order, as hex without leading zeros.
        reversed_flags = int(f"{self.compatibility:032b}"[::-1], 2)
        parts = [sample_entry, f"{space}{self.profile_idc}", f"{reversed_flags:X}",
                 f"{'H' if self.tier else 'L'}{self.level_idc}"]
        # Each constraint byte as hex; trailing zero bytes are left out.
        parts.extend(f"{byte:X}" for byte in self.constraints.rstrip(b"\x00"))
        return ".".join(parts)


@dataclass(frozen=True, slots=True)
class HevcSps:
    ptl: ProfileTierLevel
    chroma_format_idc: int
    width: int  # luma samples, after the conformance window
    height: int
    bit_depth_luma: int
    bit_depth_chroma: int


def ptl_from_hvcc(record: bytes | bytearray | memoryview) -> ProfileTierLevel:
    """The general profile_tier_level of an HEVCDecoderConfigurationRecord (the hvcC box's body)."""
    if len(record) < 13:
        raise SpsError("hvcC record shorter than its fixed header")
    if record[0] != 1:
        raise SpsError(f"hvcC configurationVersion {record[0]} is not 1")
    b1 = record[1]
    return ProfileTierLevel(b1 >> 6, (b1 >> 5) & 1, b1 & 0x1F, int.from_bytes(record[2:6], "big"),
                            bytes(record[6:12]), record[12])


def _profile_tier_level(b: BitReader, max_sub_layers_minus1: int) -> ProfileTierLevel:
    space, tier, profile = b.u(2), b.u(1), b.u(5)
    compatibility = b.u(32)
    constraints = b.u(48).to_bytes(6, "big")
    level = b.u(8)
    present = [(b.u(1), b.u(1)) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        b.u(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        b.u(88 * profile_present + 8 * level_present)  # sub-layer profile and level: not needed
    return ProfileTierLevel(space, tier, profile, compatibility, constraints, level)


def parse_sps(nal: bytes) -> HevcSps:
    """Profile, tier, level, chroma format, size and bit depths of an SPS NAL unit (with its header)."""
    if len(nal) < 4 or (nal[0] >> 1) & 0x3F != SPS_NAL_TYPE:
        raise SpsError("not an H.265 SPS NAL unit")
    b = BitReader(unescape(nal[2:]))
    b.u(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = b.u(3)
    if max_sub_layers_minus1 >= MAX_SUB_LAYERS:
        raise SpsError("sps_max_sub_layers_minus1 out of range")
    b.u(1)  # sps_temporal_id_nesting_flag
    ptl = _profile_tier_level(b, max_sub_layers_minus1)
    if b.ue() > 15:
        raise SpsError("sps_seq_parameter_set_id out of range")
    chroma = b.ue()
    if chroma > 3:
        raise SpsError("bad chroma_format_idc")
    separate_planes = b.u(1) if chroma == 3 else 0
    width, height = b.ue(), b.ue()
    if b.u(1):  # conformance_window_flag: offsets in chroma sample units
        chroma_array_type = 0 if separate_planes else chroma
        sub_w = 2 if chroma_array_type in (1, 2) else 1
        sub_h = 2 if chroma_array_type == 1 else 1
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    depth_luma, depth_chroma = b.ue() + 8, b.ue() + 8
    if not (0 < width <= 16888 and 0 < height <= 16888):  # the largest size level 6.2 allows
        raise SpsError("picture size out of range")
    if depth_luma > 16 or depth_chroma > 16:
        raise SpsError("bit depth out of range")
    return HevcSps(ptl, chroma, width, height, depth_luma, depth_chroma)
