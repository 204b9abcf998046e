"""Read FCS 2.0, 3.0, 3.1 (and 3.2 per-parameter types) files into :class:`Sample` objects.

Our own numpy reader, written because no existing Python reader returns correct values for
every real file we test against. What it handles, and why:

* TEXT with any delimiter, escaped (doubled) delimiters inside values, the empty values of
  FCS 2.0 files (``$INST//$FIL``), a missing final delimiter, trailing padding, case and
  space differences in keys, non-UTF-8 bytes (latin-1 fallback), supplemental TEXT.
* DATA offsets: HEADER and TEXT may disagree; the pair consistent with ``$TOT`` x bytes
  per event and the file size wins, and an inconsistent file raises :class:`FCSError`
  naming the numbers.
* Integer data of any width (8/16/24/32/64 bits, mixed widths per parameter, 10-bit
  values stored in 16-bit words, bit-packed values), masked to ``$PnR``/``$PnB``; float
  and double data; both byte orders; several data sets per file (``$NEXTDATA``).
* Stored values are kept exactly (integers are never rounded through float32); scaling
  ($PnE, $PnG) is applied lazily by :class:`~cytoflow_res.sample.Sample`.
* Huge files: ``read_fcs(path, channels=...)`` decodes only the channels asked for, and
  it, like a whole read of any layout that cannot be decoded in place, goes through the
  DATA segment a block (2 MiB) at a time: memory is the result plus a block, never the
  whole segment. Every event is decoded the same way in any block, so a column read alone
  equals that column of a whole read.
* Damaged or forged files (tested by fuzzing, ``tests/test_fcs_fuzz.py``) raise
  :class:`FCSError` naming the file, and nothing else: every size the HEADER or TEXT
  declares ($TOT, $PAR, offsets, $NEXTDATA) is checked against the real file before
  anything is allocated or looped over, so memory and time stay proportional to the file.
  Scaling keywords that cannot be applied ($PnE beyond any float, a negative $PnG) are
  ignored with a logged warning: the stored values are still read.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Literal, TypeAlias

import numpy as np

from cytoflow_res.errors import FCSError
from cytoflow_res.sample import Channel, Sample

__all__ = ["ChannelSelection", "FCSHeader", "parse_text", "read_fcs", "read_header"]

log = logging.getLogger(__name__)

_HEADER_LEN = 58
_MAX_PAR = 100_000  # far above any instrument (spectral cytometers write a few hundred)
_MAX_DATASETS = 1000  # count_datasets stops there
_PARAM_KEY = re.compile(r"^\$P(\d+)([A-Z]+)$")

ChannelSelection: TypeAlias = "Sequence[str | int] | Callable[[Sample], Iterable[str | int]]"
"""Channels to read: names, labels or indices, or a function choosing them from the channels.

A function receives the data set as a :class:`Sample` with every channel and the keywords
but no events (zero rows), so that channels can be chosen by template roles and aliases.
"""


# ---------------------------------------------------------------------------- TEXT


def parse_text(segment: bytes) -> dict[str, str]:
    """Parse an FCS TEXT segment into a keyword dictionary.

    The first byte is the delimiter. A doubled delimiter is an escaped delimiter
    (FCS 3.x), except that an even run of delimiters directly after a key ends the key
    and an empty value, as FCS 2.0 writers produced (``$INST//$FIL``). FCS 3.1 forbids
    keys and values that start with the delimiter, which makes this reading unique. Keys are stripped and
    upper-cased; values are stripped of surrounding white space and NUL bytes. Bytes that
    are not UTF-8 are decoded as latin-1.

    Parameters
    ----------
    segment
        The TEXT bytes, starting with the delimiter.

    Returns
    -------
    dict
        Keyword to value; a repeated key keeps its first value.
    """
    if not segment:
        return {}
    delim = segment[:1]
    body = segment[1:]
    if delim + delim not in body and delim[0] < 0x80:
        fast = _parse_text_simple(body, delim)
        if fast is not None:
            return fast
    tokens: list[bytes] = []
    current = bytearray()
    in_value = False  # tokens alternate key, value, key, ...
    pos = 0
    end = len(body)
    for run in re.finditer(re.escape(delim) + b"+", body):
        current += body[pos : run.start()]
        r = run.end() - run.start()
        pos = run.end()
        if pos >= end:
            # The closing run: an odd run is escapes plus the terminator; an even one ("1567//",
            # as an Accuri C6 writes) is read as terminators, not as a value ending in "/".
            if r % 2:
                current += delim * (r // 2)
            tokens.append(bytes(current))
            current = bytearray()
            break
        escapes, closes = divmod(r, 2)
        if closes:
            # odd run: pairs are escaped delimiters, the last one ends the token
            current += delim * escapes
            tokens.append(bytes(current))
            current = bytearray()
            in_value = not in_value
        elif in_value or not current:
            # even run inside a value: all escapes (a key is never empty, so no token ends)
            current += delim * escapes
        else:
            # even run right after a key: the key ends and an empty value follows
            # (FCS 2.0 writers: "$INST//$FIL"); any further pairs belong to the key
            current += delim * (escapes - 1)
            tokens.append(bytes(current))
            tokens.append(b"")
            current = bytearray()
    else:
        current += body[pos:]
    if current.strip(_PADDING):
        tokens.append(bytes(current))  # no final delimiter: the rest is the last value
    return _pair_up([_decode(t) for t in tokens])


_PADDING = b" \x00\r\n\t"
_PADDING_STR = _PADDING.decode("ascii")


def _parse_text_simple(body: bytes, delim: bytes) -> dict[str, str] | None:
    """Fast path for TEXT without doubled delimiters (most modern files): one split."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    tokens = text.split(delim.decode("ascii"))
    last = tokens.pop()  # after the final delimiter: padding, or an unterminated last value
    if last.strip(_PADDING_STR):
        tokens.append(last)
    return _pair_up(tokens)


def _pair_up(tokens: list[str]) -> dict[str, str]:
    keywords: dict[str, str] = {}
    for i in range(0, len(tokens) - 1, 2):
        key = tokens[i].strip().upper()
        if key:
            keywords.setdefault(key, tokens[i + 1].strip(_PADDING_STR))
    return keywords


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# -------------------------------------------------------------------------- HEADER


@dataclass(frozen=True)
class FCSHeader:
    """Keywords and layout of one data set, read without its DATA segment.

    Attributes
    ----------
    path
        The file.
    dataset
        Zero-based data set index.
    version
        ``"FCS3.1"`` etc.
    keywords
        TEXT (and supplemental TEXT) keywords, keys upper-cased.
    offset
        Byte offset of this data set's HEADER in the file.
    text_offsets, header_data_offsets
        (start, end) as written in the HEADER, relative to ``offset``.
    """

    path: Path
    dataset: int
    version: str
    keywords: dict[str, str] = field(repr=False)
    offset: int = 0
    text_offsets: tuple[int, int] = (0, 0)
    header_data_offsets: tuple[int, int] = (0, 0)

    @property
    def n_events(self) -> int:
        """``$TOT`` (-1 when the keyword is absent)."""
        return _int_keyword(self.keywords, "$TOT", default=-1)

    @property
    def n_channels(self) -> int:
        """``$PAR``."""
        return _int_keyword(self.keywords, "$PAR", default=0)

    @property
    def channel_names(self) -> list[str]:
        """``$PnN`` for every parameter.

        Raises
        ------
        FCSError
            If ``$PAR`` is larger than the TEXT segment can describe.
        """
        npar = _plausible_par(self) if self.n_channels > 0 else 0
        return [self.keywords.get(f"$P{i}N", f"P{i}") for i in range(1, npar + 1)]

    @property
    def next_data(self) -> int:
        """``$NEXTDATA``: offset of the next data set relative to this one (0 = none)."""
        return _int_keyword(self.keywords, "$NEXTDATA", default=0)


def _plausible_par(header: FCSHeader) -> int:
    """``$PAR``, checked against the TEXT before anything is sized by it.

    Every parameter has at least its (required) ``$PnB`` keyword, so a ``$PAR`` larger than
    the number of keywords comes from a damaged or forged TEXT; refusing it keeps memory and
    time proportional to the file, not to the number it declares.
    """
    kw = header.keywords
    npar = header.n_channels
    if npar <= 0:
        msg = f"$PAR is {kw.get('$PAR', 'missing')!r}; the file declares no parameters"
        raise FCSError(header.path, msg)
    if npar > len(kw) or npar > _MAX_PAR:
        why = (
            f"the TEXT segment holds {len(kw)} keywords, fewer than one per parameter"
            if npar > len(kw)
            else f"no instrument measures more than {_MAX_PAR} parameters"
        )
        msg = f"$PAR = {npar} is not plausible: {why}; the TEXT segment is damaged"
        raise FCSError(header.path, msg)
    return npar


def _int_keyword(keywords: dict[str, str], key: str, *, default: int) -> int:
    text = keywords.get(key, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return default
        return int(value) if math.isfinite(value) else default


def _parse_offset(field_bytes: bytes, path: Path, what: str) -> int:
    text = field_bytes.decode("ascii", errors="replace").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        msg = f"HEADER {what} offset {text!r} is not a number; the file is damaged or not FCS"
        raise FCSError(path, msg) from None
    return value


def _read_header_at(fh: BinaryIO, path: Path, offset: int, file_size: int, dataset: int) -> FCSHeader:
    fh.seek(offset)
    head = fh.read(_HEADER_LEN)
    if len(head) < _HEADER_LEN or not head.startswith(b"FCS"):
        start = head[:10].decode("latin-1", errors="replace")
        where = "" if offset == 0 else f" at byte {offset} (data set {dataset})"
        msg = (
            f"not an FCS file{where}: it must start with 'FCS2.0', 'FCS3.0' or 'FCS3.1' "
            f"but starts with {start!r}; check that this is a flow cytometry listmode export"
        )
        raise FCSError(path, msg)
    version = head[:6].decode("ascii", errors="replace")
    t0 = _parse_offset(head[10:18], path, "TEXT start")
    t1 = _parse_offset(head[18:26], path, "TEXT end")
    d0 = _parse_offset(head[26:34], path, "DATA start")
    d1 = _parse_offset(head[34:42], path, "DATA end")
    if not (_HEADER_LEN <= t0 <= t1) or offset + t1 >= file_size:
        msg = (
            f"HEADER gives TEXT at bytes {t0}-{t1}, outside the file ({file_size} bytes) or "
            "before the end of the HEADER; the file is truncated or damaged"
        )
        raise FCSError(path, msg)
    fh.seek(offset + t0)
    keywords = parse_text(fh.read(t1 - t0 + 1))
    if not keywords:
        msg = "the TEXT segment holds no keywords; the file is damaged"
        raise FCSError(path, msg)
    supplemental = _supplemental_span(keywords, offset, (t0, t1), file_size)
    if supplemental is not None:
        s0, s1 = supplemental
        fh.seek(offset + s0)
        # Supplemental TEXT starts with its own delimiter; primary TEXT wins on conflicts.
        for key, value in parse_text(fh.read(s1 - s0 + 1)).items():
            keywords.setdefault(key, value)
    return FCSHeader(
        path=path,
        dataset=dataset,
        version=version,
        keywords=keywords,
        offset=offset,
        text_offsets=(t0, t1),
        header_data_offsets=(d0, d1),
    )


def _supplemental_span(
    keywords: dict[str, str], offset: int, text: tuple[int, int], file_size: int
) -> tuple[int, int] | None:
    """(start, end) of a supplemental TEXT segment inside the file, or None."""
    s0 = _int_keyword(keywords, "$BEGINSTEXT", default=0)
    s1 = _int_keyword(keywords, "$ENDSTEXT", default=0)
    if 0 < s0 < s1 and offset + s1 < file_size and (s0, s1) != text:
        return s0, s1
    return None


def _next_offset(header: FCSHeader, file_size: int) -> int | None:
    """Absolute offset of the next data set's HEADER, or None at the end of the chain.

    Raises FCSError when ``$NEXTDATA`` points back into this data set's HEADER or TEXT:
    each data set must start after the TEXT segments of the one before, which also stops
    cycles and keeps the work of walking the chain proportional to the file size.
    """
    nxt = header.next_data
    if nxt <= 0:
        return None
    target = header.offset + nxt
    if target >= file_size:
        msg = (
            f"$NEXTDATA = {nxt} of data set {header.dataset} points past the end of the file "
            f"({file_size} bytes); the file is truncated or the keyword is damaged"
        )
        raise FCSError(header.path, msg)
    parsed_end = header.text_offsets[1]
    supplemental = _supplemental_span(header.keywords, header.offset, header.text_offsets, file_size)
    if supplemental is not None:
        parsed_end = max(parsed_end, supplemental[1])
    if nxt <= parsed_end:
        msg = (
            f"$NEXTDATA = {nxt} of data set {header.dataset} points inside that data set's HEADER "
            f"or TEXT (which end at byte {header.offset + parsed_end}); the next data set must "
            "start after them, so the keyword is damaged"
        )
        raise FCSError(header.path, msg)
    return target


def _locate_header(fh: BinaryIO, path: Path, dataset: int, file_size: int) -> FCSHeader:
    if dataset < 0:
        msg = f"dataset must be >= 0, got {dataset}"
        raise FCSError(path, msg)
    header = _read_header_at(fh, path, 0, file_size, 0)
    for index in range(1, dataset + 1):
        # Every step moves past the previous TEXT, so a huge ``dataset`` ends within the file.
        offset = _next_offset(header, file_size)
        if offset is None:
            msg = f"data set {dataset} requested but the file holds only {index} data set(s)"
            raise FCSError(path, msg)
        header = _read_header_at(fh, path, offset, file_size, index)
    return header


def read_header(path: str | os.PathLike[str], *, dataset: int = 0) -> FCSHeader:
    """Read the keywords of one data set without reading its events.

    Fast enough to index a whole plate: only the HEADER and TEXT bytes are read.

    Parameters
    ----------
    path
        The FCS file.
    dataset
        Zero-based data set index (Beckman .LMD files hold two).

    Returns
    -------
    FCSHeader

    Raises
    ------
    FCSError
        If the file is not FCS or its HEADER/TEXT is damaged.
    """
    path = Path(path)
    with _open_fcs(path) as (fh, file_size):
        return _locate_header(fh, path, dataset, file_size)


def count_datasets(path: str | os.PathLike[str]) -> int:
    """Number of data sets chained by ``$NEXTDATA`` in a file.

    Parameters
    ----------
    path
        The FCS file.

    Returns
    -------
    int
        1 or more: the count stops at the first damaged link (a ``$NEXTDATA`` pointing
        outside the file or back into its own data set, or no FCS HEADER where it points),
        and at 1000.

    Raises
    ------
    FCSError
        If the first data set's HEADER or TEXT cannot be read.
    """
    path = Path(path)
    with _open_fcs(path) as (fh, file_size):
        count = 1
        header = _read_header_at(fh, path, 0, file_size, 0)
        while count < _MAX_DATASETS:
            # A damaged link ends the count: the data sets before it stay readable.
            try:
                offset = _next_offset(header, file_size)
                if offset is None:
                    break
                header = _read_header_at(fh, path, offset, file_size, count)
            except FCSError:
                break
            count += 1
        return count


@contextlib.contextmanager
def _open_fcs(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """Open ``path`` for reading and give its size; OS errors become FCSError naming the file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        msg = "file not found; check the path (relative paths are taken from the current directory)"
        raise FCSError(path, msg) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        msg = f"cannot open the file ({getattr(exc, 'strerror', None) or exc})"
        raise FCSError(path, msg) from None
    if not stat.S_ISREG(info.st_mode):
        # A directory fails to open; a pipe or device could block or never end.
        msg = "is not a regular file (a directory, device or pipe); give the path of an FCS file"
        raise FCSError(path, msg)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after the caller's reads
    except OSError as exc:
        msg = f"cannot open the file ({exc.strerror or exc})"
        raise FCSError(path, msg) from None
    with fh:
        try:
            yield fh, info.st_size
        except OSError as exc:
            msg = f"cannot read the file ({exc.strerror or exc}); check the disk or network share"
            raise FCSError(path, msg) from exc


# ---------------------------------------------------------------------- channels


@dataclass(frozen=True)
class _Layout:
    """How one data set's DATA segment is laid out."""

    datatype: str  # overall $DATATYPE
    types: tuple[str, ...]  # per column: I, F or D
    widths: tuple[int, ...]  # stored bits per column (after the words-vs-packed decision)
    masks: tuple[int, ...]  # integer masks per column (0 = none)
    byteorder: str  # "<" or ">" or "perm"
    byteperm: tuple[int, ...]  # for unusual $BYTEORD: stored byte i holds significance perm[i]
    packed: bool  # values bit-packed (no byte alignment)

    @property
    def bits_per_event(self) -> int:
        return sum(self.widths)

    @property
    def uniform(self) -> bool:
        """One type and one width for every column, byte-aligned."""
        return len(set(self.widths)) == 1 and len(set(self.types)) == 1 and not self.packed


def _float_keyword(keywords: dict[str, str], key: str, default: float) -> float:
    text = keywords.get(key, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return value if math.isfinite(value) else default


def _channels(header: FCSHeader, layout: _Layout) -> list[Channel]:
    kw = header.keywords
    out = []
    for i in range(header.n_channels):
        p = i + 1
        name = kw.get(f"$P{p}N", "").strip() or f"P{p}"
        label = kw.get(f"$P{p}S", "").strip()
        rng = _float_keyword(kw, f"$P{p}R", 0.0)
        decades, log_offset = 0.0, 0.0
        e_text = kw.get(f"$P{p}E", "").strip()
        if e_text:
            parts = [x.strip() for x in e_text.replace(";", ",").split(",")]
            try:
                decades = float(parts[0])
                log_offset = float(parts[1]) if len(parts) > 1 and parts[1] else 0.0
            except ValueError:
                decades, log_offset = 0.0, 0.0
        if not math.isfinite(decades) or decades < 0:
            decades = 0.0
        if decades > 0 and log_offset <= 0:
            log_offset = 1.0  # f2 = 0 is read as 1 (FCS 3.1, section 3.3.16)
        if decades > 0 and not _finite_top(decades, log_offset):
            log.warning(
                "%s: $P%dE = %r puts the top of the scale beyond any float; the keyword is "
                "damaged, so channel %s is read as linear",
                header.path, p, e_text, name,
            )
            decades, log_offset = 0.0, 0.0
        gain = _float_keyword(kw, f"$P{p}G", 1.0) or 1.0
        if gain < 0:
            log.warning(
                "%s: $P%dG = %r is negative, which no amplifier gain can be; it is ignored "
                "for channel %s", header.path, p, kw.get(f"$P{p}G"), name,
            )
            gain = 1.0
        timestep = 0.0
        if name.strip().lower() == "time":
            # Writers often put the time step in $PnG; a gain makes no sense on time (as flowio).
            gain = 1.0
            timestep = _float_keyword(kw, "$TIMESTEP", 0.0)
        ctype = layout.types[i]
        if ctype != "I":
            decades, log_offset = 0.0, 0.0  # never log-decode float data
        out.append(
            Channel(
                index=i,
                name=name,
                label=label,
                range=rng,
                bits=layout.widths[i],
                datatype=ctype,
                log_decades=decades,
                log_offset=log_offset,
                gain=gain,
                timestep=timestep,
            )
        )
    return out


def _finite_top(decades: float, log_offset: float) -> bool:
    """True if ``10**decades * log_offset`` (the top of a log scale) is a finite positive float."""
    return math.isfinite(log_offset) and log_offset > 0 and decades + math.log10(log_offset) < 300


def _mask_for(range_text: str, bits: int) -> int:
    """Integer mask from $PnR and $PnB: range-1 for a power-of-two range, else the bits it needs."""
    full = (1 << bits) - 1 if bits < 64 else (1 << 64) - 1
    try:
        rng = float(range_text)
    except ValueError:
        return full
    if not math.isfinite(rng) or rng <= 1:
        return full
    rng_int = math.ceil(rng)
    needed = (1 << (rng_int - 1).bit_length()) - 1
    return min(needed, full)


def _layout(header: FCSHeader, data_nbytes: int | None) -> _Layout:
    kw = header.keywords
    path = header.path
    npar = _plausible_par(header)
    datatype = kw.get("$DATATYPE", "").strip().upper()
    if datatype not in ("I", "F", "D"):
        msg = (
            f"$DATATYPE is {kw.get('$DATATYPE', 'missing')!r}; only I (integer), F (float) and "
            "D (double) list-mode data can be read (ASCII data, A, is not supported)"
        )
        raise FCSError(path, msg)
    mode = kw.get("$MODE", "L").strip().upper() or "L"
    if mode != "L":
        msg = f"$MODE is {mode!r}; only list-mode (L) data can be read, not histograms"
        raise FCSError(path, msg)
    types = []
    bits = []
    for p in range(1, npar + 1):
        ptype = kw.get(f"$P{p}DATATYPE", "").strip().upper() or datatype  # FCS 3.2
        if ptype not in ("I", "F", "D"):
            ptype = datatype
        types.append(ptype)
        if ptype == "F":
            bits.append(32)
        elif ptype == "D":
            bits.append(64)
        else:
            b_text = kw.get(f"$P{p}B", "").strip()
            try:
                b = int(float(b_text))
            except (ValueError, OverflowError):  # OverflowError: "inf"
                b = -1
            if b <= 0 or b > 64:
                msg = f"$P{p}B is {b_text!r}; integer data needs a bit width from 1 to 64"
                raise FCSError(path, msg)
            bits.append(b)
    byteord = kw.get("$BYTEORD", "").strip()
    try:
        order = [int(x) for x in re.split(r"[,\s]+", byteord) if x]
    except ValueError:
        order = []
    if not order or sorted(order) != list(range(1, len(order) + 1)):
        if any(b > 8 for b in bits):
            msg = f"$BYTEORD is {byteord!r}; expected e.g. '1,2,3,4' (little-endian) or '4,3,2,1'"
            raise FCSError(path, msg)
        order = [1]
    perm: tuple[int, ...] = ()
    if order == sorted(order):
        byteorder = "<"
    elif order == sorted(order, reverse=True):
        byteorder = ">"
    else:
        byteorder = "perm"
        perm = tuple(o - 1 for o in order)
    masks = [
        _mask_for(kw.get(f"$P{p}R", ""), bits[p - 1]) if types[p - 1] == "I" else 0
        for p in range(1, npar + 1)
    ]
    packed = False
    if any(t == "I" and b % 8 != 0 for t, b in zip(types, bits, strict=True)):
        # Values of odd widths are either bit-packed, or (as Beckman FC500 writes 10-bit data)
        # stored in whole 16-bit words; the DATA size tells which.
        words = [_word_bits(b) if t == "I" else b for t, b in zip(types, bits, strict=True)]
        tot = header.n_events
        packed_bytes = (tot * sum(bits) + 7) // 8 if tot >= 0 else -1
        word_bytes = tot * sum(words) // 8 if tot >= 0 else -1
        if data_nbytes is not None and tot >= 0 and data_nbytes in (packed_bytes, packed_bytes + 1) \
                and data_nbytes not in (word_bytes, word_bytes + 1):
            packed = True
        else:
            bits = words
    if byteorder == "perm" and any(b != 8 * len(order) for b in bits if b > 8):
        msg = f"$BYTEORD {byteord!r} reorders bytes in a way that only fits {len(order)}-byte values"
        raise FCSError(path, msg)
    return _Layout(
        datatype=datatype,
        types=tuple(types),
        widths=tuple(bits),
        masks=tuple(masks),
        byteorder=byteorder,
        byteperm=perm,
        packed=packed,
    )


def _word_bits(bits: int) -> int:
    for w in (8, 16, 32, 64):
        if bits <= w:
            return w
    return 64


# -------------------------------------------------------------------------- DATA


def _data_span(header: FCSHeader, layout: _Layout, file_size: int) -> tuple[int, int]:
    """Absolute (start, n_events) of the DATA segment, choosing between HEADER and TEXT offsets."""
    kw = header.keywords
    base = header.offset
    bits_per_event = layout.bits_per_event
    tot = header.n_events
    h0, h1 = header.header_data_offsets
    k0 = _int_keyword(kw, "$BEGINDATA", default=0)
    k1 = _int_keyword(kw, "$ENDDATA", default=0)
    t0, t1 = header.text_offsets
    candidates: list[tuple[str, int, int]] = []
    for source, s, e in (("HEADER", h0, h1), ("TEXT", k0, k1)):
        if s > 0 and (s, e) not in [(c[1], c[2]) for c in candidates]:
            candidates.append((source, s, e))
    if not candidates:
        msg = (
            f"no DATA offsets: HEADER gives {h0}-{h1} and TEXT $BEGINDATA/$ENDDATA give "
            f"{kw.get('$BEGINDATA', 'none')}-{kw.get('$ENDDATA', 'none')}"
        )
        raise FCSError(header.path, msg)
    if tot < 0:
        # $TOT is optional in FCS 2.0: derive it from the segment size.
        source, s, e = candidates[0]
        nbytes = e - s + 1
        if nbytes <= 0:
            msg = (
                f"$TOT is missing and the {source} DATA offsets {s}-{e} hold no bytes, so the "
                "number of events is unknown; the file is damaged"
            )
            raise FCSError(header.path, msg)
        tot = (nbytes * 8) // bits_per_event
    expected = (tot * bits_per_event + 7) // 8
    if expected > file_size:
        size = f"{bits_per_event // 8} bytes" if bits_per_event % 8 == 0 else f"{bits_per_event} bits"
        msg = (
            f"$TOT = {tot} events of {size} need {expected} bytes, but the "
            f"file has {file_size}; the file is truncated or its TEXT is damaged"
        )
        raise FCSError(header.path, msg)

    def fits(s: int) -> bool:
        # inside the file, after the HEADER, and not overlapping TEXT (DATA may precede TEXT)
        overlaps_text = s <= t1 and s + expected - 1 >= t0
        return s >= _HEADER_LEN and not overlaps_text and base + s + expected <= file_size

    # 1) a candidate whose own span has exactly the expected size and lies in the file
    for _source, s, e in candidates:
        if fits(s) and e - s + 1 == expected:
            return base + s, tot
    # 2) allow the common off-by-one on the end offset (end written as one past the last byte)
    for _source, s, e in candidates:
        if fits(s) and abs((e - s + 1) - expected) <= 1:
            return base + s, tot
    # 3) a start where the data fits, when only the end offsets are wrong
    starts = [s for _source, s, _e in candidates if fits(s)]
    if len(set(starts)) == 1 or (starts and len(candidates) == 1):
        log.warning(
            "%s: DATA end offsets do not match $TOT x event size (%d bytes); reading %d events from byte %d",
            header.path, expected, tot, starts[0],
        )
        return base + starts[0], tot
    if len(set(starts)) > 1:
        # Both starts fit: prefer the one whose end lands on the file end or next data set.
        limit = file_size - base if header.next_data <= 0 else header.next_data
        for s in starts:
            if abs(limit - (s + expected)) <= 8:
                return base + s, tot
        return base + starts[0], tot
    detail = "; ".join(f"{src} says {s}-{e}" for src, s, e in candidates)
    msg = (
        f"no consistent DATA offset ({detail}; $TOT x event size = {expected} bytes; "
        f"file size {file_size} bytes): the DATA segment is missing or truncated"
    )
    raise FCSError(header.path, msg)


def _in_place(layout: _Layout) -> bool:
    """True for layouts decoded in place: one type, 8/16/32/64-bit values, plain byte order."""
    kind, width = layout.types[0], layout.widths[0]
    return layout.uniform and layout.byteorder != "perm" and (kind in ("F", "D") or width in (8, 16, 32, 64))


def _raw_dtype(layout: _Layout) -> np.dtype:
    """The dtype of ``Sample.raw`` for a layout, whichever columns are read.

    Layouts decoded in place keep their own type (unsigned integers, float32, float64); any
    other is decoded into float64 when a column is float or double, else into the smallest
    unsigned integer holding the widest column.
    """
    if _in_place(layout):
        kind, width = layout.types[0], layout.widths[0]
        return np.dtype(f"u{width // 8}" if kind == "I" else "f4" if kind == "F" else "f8")
    if any(t != "I" for t in layout.types):
        return np.dtype(np.float64)
    max_bits = max(layout.widths)
    return np.dtype(np.uint64 if max_bits > 32 else np.uint32 if max_bits > 16
                    else np.uint16 if max_bits > 8 else np.uint8)


def _decode_uniform(buf: np.ndarray, layout: _Layout, n_events: int) -> np.ndarray:
    """Decode DATA of a layout that :func:`_in_place` accepts: byte-swapped and masked in place.

    The result is a view of ``buf``.
    """
    width = layout.widths[0]
    kind = layout.types[0]
    npar = len(layout.widths)
    if kind == "I":
        dtype = np.dtype(f"{layout.byteorder}u{width // 8}")
    else:
        dtype = np.dtype(f"{layout.byteorder}{'f4' if kind == 'F' else 'f8'}")
    arr = buf.view(dtype).reshape(n_events, npar)
    if not dtype.isnative:
        arr = arr.byteswap(inplace=True).view(dtype.newbyteorder("="))
    if kind == "I":
        masks = np.array(layout.masks, dtype=arr.dtype)
        full = np.iinfo(arr.dtype).max
        if np.any(masks != full):
            np.bitwise_and(arr, masks, out=arr)
    return arr


def _assemble_bytes(cols: np.ndarray, significance: list[int]) -> np.ndarray:
    """Combine byte columns into unsigned integers; significance[i] = byte rank of column i."""
    nbytes = len(significance)
    out_dtype: type[np.unsignedinteger] = (
        np.uint64 if nbytes > 4 else np.uint32 if nbytes > 2 else np.uint16 if nbytes == 2 else np.uint8
    )
    out = np.zeros(cols.shape[0], dtype=out_dtype)
    for i, rank in enumerate(significance):
        out |= cols[:, i].astype(out_dtype) << out_dtype(8 * rank)
    return out


def _store(out: np.ndarray, value: np.ndarray, kind: str, mask: int) -> None:
    """Put one column's assembled unsigned values into ``out`` as its type says."""
    if kind == "F":
        out[:] = value.astype(np.uint32).view(np.float32)
    elif kind == "D":
        out[:] = value.astype(np.uint64).view(np.float64)
    else:
        if mask:
            value &= value.dtype.type(mask)
        out[:] = value


def _decode_generic(
    buf: np.ndarray, layout: _Layout, n_events: int, columns: Sequence[int], out: np.ndarray
) -> None:
    """Decode ``columns`` of DATA into ``out`` (``n_events`` x ``len(columns)``).

    For mixed widths or types, 24-bit values, odd byte orders and bit packing.
    """
    if layout.packed:
        _decode_packed(buf, layout, n_events, columns, out)
        return
    widths = layout.widths
    starts = np.cumsum([0, *widths]) // 8  # byte offset of each column within an event
    bytes_per_event = sum(widths) // 8
    rows = buf[: n_events * bytes_per_event].reshape(n_events, bytes_per_event)
    for k, j in enumerate(columns):
        nb = widths[j] // 8
        cols = rows[:, int(starts[j]) : int(starts[j]) + nb]
        if layout.byteorder == "<":
            significance = list(range(nb))
        elif layout.byteorder == ">":
            significance = list(range(nb - 1, -1, -1))
        else:
            # $BYTEORD lists, for each stored byte, its rank (1 = least significant).
            significance = list(layout.byteperm) if nb == len(layout.byteperm) else list(range(nb))
        value = _assemble_bytes(np.ascontiguousarray(cols), significance)
        _store(out[:, k], value, layout.types[j], layout.masks[j])


_PACKED_CHUNK_BITS = 1 << 18  # bits unpacked per chunk, one byte each


def _decode_packed(
    buf: np.ndarray, layout: _Layout, n_events: int, columns: Sequence[int], out: np.ndarray
) -> None:
    """Decode ``columns`` of bit-packed integers (most significant bit first) into ``out``.

    Unpacking to one byte per bit costs 8x the DATA size, so events are decoded a chunk at
    a time; a chunk holds a multiple of 8 events so that it starts on a byte boundary.
    """
    widths = layout.widths
    per_event = sum(widths)
    bit_starts = np.cumsum([0, *widths])
    chunk = max(8, (_PACKED_CHUNK_BITS // per_event) // 8 * 8)
    for first in range(0, n_events, chunk):
        count = min(chunk, n_events - first)
        lo = first * per_event // 8
        hi = (first * per_event + count * per_event + 7) // 8
        bits = np.unpackbits(buf[lo:hi], bitorder="big")[: count * per_event].reshape(count, per_event)
        for k, j in enumerate(columns):
            w = widths[j]
            start = int(bit_starts[j])
            # Re-pack this column's bits into whole bytes (left-aligned), then shift right.
            packed = np.packbits(bits[:, start : start + w], axis=1, bitorder="big")
            nbytes = packed.shape[1]
            value = _assemble_bytes(packed, list(range(nbytes - 1, -1, -1)))
            value >>= value.dtype.type(8 * nbytes - w)
            _store(out[first : first + count, k], value, layout.types[j], layout.masks[j])


_BLOCK_BYTES = 1 << 21
"""DATA bytes read and decoded at a time when a read goes block by block (2 MiB)."""


def _block_events(layout: _Layout) -> int:
    """Events per block: about ``_BLOCK_BYTES`` of DATA, a multiple of 8 events.

    A multiple of 8, so that a block of bit-packed data starts on a byte boundary.
    """
    return max(8, (_BLOCK_BYTES * 8 // layout.bits_per_event) // 8 * 8)


def _read_data(
    fh: BinaryIO,
    header: FCSHeader,
    layout: _Layout,
    start: int,
    n_events: int,
    columns: Sequence[int] | None = None,
) -> np.ndarray:
    """Decode the DATA segment: every column, or only ``columns`` (file indices, in order).

    A whole read of a uniform layout decodes the DATA in place, so it holds one copy of it.
    Any other read (selected columns, or mixed, 24-bit, odd-order or bit-packed layouts)
    goes block by block (:data:`_BLOCK_BYTES` of DATA at a time) into the result, so it
    holds the result plus one block, never the whole DATA segment. Both decode every event
    the same way, so a column read alone equals that column of a whole read.
    """
    npar = header.n_channels
    cols = list(range(npar)) if columns is None else list(columns)
    nbytes = (n_events * layout.bits_per_event + 7) // 8
    if n_events == 0:
        dtype = np.float64 if layout.datatype == "D" else np.float32 if layout.datatype == "F" else np.uint32
        return np.empty((0, len(cols)), dtype=dtype)
    fh.seek(start)
    if columns is None and _in_place(layout):
        buf = np.fromfile(fh, dtype=np.uint8, count=nbytes)
        if buf.size != nbytes:
            msg = f"DATA segment ends early: expected {nbytes} bytes from byte {start}, got {buf.size}"
            raise FCSError(header.path, msg)
        return _decode_uniform(buf, layout, n_events)
    out = np.empty((n_events, len(cols)), dtype=_raw_dtype(layout))
    if not cols:
        return out
    in_place = _in_place(layout)
    block = _block_events(layout)
    bits = layout.bits_per_event
    for first in range(0, n_events, block):
        stop = min(n_events, first + block)
        lo, hi = first * bits // 8, (stop * bits + 7) // 8  # consecutive: block is a multiple of 8
        buf = np.fromfile(fh, dtype=np.uint8, count=hi - lo)
        if buf.size != hi - lo:
            msg = f"DATA segment ends early: expected {nbytes} bytes from byte {start}, got {lo + buf.size}"
            raise FCSError(header.path, msg)
        # Float columns copied into a float64 array flag "invalid" on signalling NaNs (damaged
        # DATA); the NaN itself is the faithful result.
        with np.errstate(invalid="ignore"):
            if in_place:
                out[first:stop] = _decode_uniform(buf, layout, stop - first)[:, cols]
            else:
                _decode_generic(buf, layout, stop - first, cols, out[first:stop])
    return out


# ------------------------------------------------------------------------ public


def read_fcs(
    path: str | os.PathLike[str],
    *,
    dataset: int = 0,
    engine: Literal["cytoflow_res", "flowio", "fcsparser"] = "cytoflow_res",
    channels: ChannelSelection | None = None,
) -> Sample:
    """Read one data set of an FCS file.

    Parameters
    ----------
    path
        The FCS file (``.fcs``, ``.lmd``, or any extension).
    dataset
        Zero-based data set index; Beckman ``.LMD`` files hold an FCS 2.0 data set (0)
        and an FCS 3.0 one (1).
    engine
        ``"cytoflow_res"`` (default, our reader), or ``"flowio"`` / ``"fcsparser"`` to
        cross-check against those readers (their values, our Sample).
    channels
        Read only these channels: names, labels or indices (matched as
        :meth:`Sample.channel` matches them), or a function that receives the data set
        without its events (every channel, the keywords, zero rows) and returns them. The
        Sample holds them in file order (their ``Channel.index`` renumbered from 0) with
        every keyword of the file; their values equal those columns of a whole read. None
        (default) reads every channel.

    Returns
    -------
    Sample
        ``raw`` holds stored values exactly; ``events`` holds scale values.

    Raises
    ------
    FCSError
        If the file cannot be read; the message names the file and the problem.
    ChannelError
        If a channel of ``channels`` matches none (or several) of the file's channels.

    Notes
    -----
    Memory. A whole read of a file with one data type and an 8/16/32/64-bit (or float)
    width holds one copy of the DATA segment, decoded in place. A read of selected channels,
    and a whole read of any other layout, decodes the DATA a block at a time (about 2 MiB)
    into the result: it holds the result (the selected columns, in the dtype of a whole
    read) plus about two blocks, never the whole DATA segment.

    Examples
    --------
    >>> s = read_fcs("example_fcs/apoptosis/parental_vehicle_r1.fcs")  # doctest: +SKIP
    >>> s.n_events, s.channel_names  # doctest: +SKIP
    >>> read_fcs("big.fcs", channels=["PI-A", "PI-W"]).channel_names  # doctest: +SKIP
    ['PI-A', 'PI-W']
    """
    path = Path(path)
    if engine != "cytoflow_res":
        from cytoflow_res.io._engines import read_with_engine

        whole = read_with_engine(path, dataset=dataset, engine=engine)
        if channels is None:
            return whole
        picked = _resolve_selection(whole, channels)
        return Sample(whole.raw[:, picked], _renumber(whole.channels, picked), whole.keywords,
                      path=path, dataset=dataset, version=whole.version)
    with _open_fcs(path) as (fh, file_size):
        header = _locate_header(fh, path, dataset, file_size)
        h0, h1 = header.header_data_offsets
        k0 = _int_keyword(header.keywords, "$BEGINDATA", default=0)
        k1 = _int_keyword(header.keywords, "$ENDDATA", default=0)
        seg = (h1 - h0 + 1) if h0 > 0 and h1 >= h0 else (k1 - k0 + 1) if k0 > 0 and k1 >= k0 else None
        layout = _layout(header, seg)
        start, n_events = _data_span(header, layout, file_size)
        all_channels = _channels(header, layout)
        columns: list[int] | None = None
        if channels is not None:
            probe = Sample(np.empty((0, len(all_channels)), dtype=_raw_dtype(layout)), all_channels,
                           header.keywords, path=path, dataset=dataset, version=header.version)
            columns = _resolve_selection(probe, channels)
        raw = _read_data(fh, header, layout, start, n_events, columns)
    chosen = all_channels if columns is None else _renumber(all_channels, columns)
    return Sample(raw, chosen, header.keywords, path=path, dataset=dataset, version=header.version)


def _resolve_selection(sample: Sample, channels: ChannelSelection) -> list[int]:
    """Column indices (file order, no repeats) of the channels a selection names."""
    keys = channels(sample) if callable(channels) else channels
    if isinstance(keys, (str, int)):  # one channel given on its own
        keys = [keys]
    return sorted({sample.channel(key).index for key in keys})


def _renumber(channels: Sequence[Channel], columns: Sequence[int]) -> list[Channel]:
    return [replace(channels[i], index=k) for k, i in enumerate(columns)]
