//! Part of the PyO3 layer: a Python list of plain ASCII `str` read into the core's
//! [`Keys::Offsets`](crate::codes::Keys) layout by all cores at once, with no Python call per
//! row.
//!
//! The limited API reads a string's UTF-8 bytes with one call per item under the GIL (about
//! 15 ns a row, on one core). A compact ASCII `str` keeps its characters right after its
//! header, its length in the header: this module reads both directly, in parallel, while the
//! calling thread holds the GIL, so no Python code runs and no object can change or go away
//! (the worker threads call nothing in Python and touch no reference count).
//!
//! The header's layout is not part of the stable ABI, so it is not assumed: it is probed once
//! per process on strings made for the purpose (`"ab"` and `"é"`), through the API itself
//! (`PyUnicode_AsUTF8AndSize` gives where the characters are; the length field must read 2;
//! the kind bits must tell the ASCII string from the other one), and a list's item array is
//! checked against `PyList_GetItem` at both ends. Where a probe fails (another interpreter, a
//! debug build), and for any list holding something else than a plain compact ASCII `str`
//! (a subclass, non-ASCII text, any other object), the reader says no and the caller takes
//! the checked path, one API call per item, with its error messages.

use std::sync::OnceLock;

use numpy::PyReadonlyArray1;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use rayon::prelude::*;

use crate::codes::pack_short;
use crate::pool::PairPool;
use crate::string_pool::{pool_from_strings, PackedRows};

/// Byte offset of `ob_type` in an object.
const OB_TYPE: usize = 8;
/// Byte offset of `ob_size` in a list, and of `length` in a `str`.
const SIZE: usize = 16;
/// Byte offset of a list's item array (`ob_item`).
const LIST_ITEMS: usize = 24;
/// Byte offset of a `str`'s `state` bit field.
const STATE: usize = 32;
/// `state` bits of a compact string, and of an ASCII one.
const COMPACT: u32 = 1 << 5;
const ASCII: u32 = 1 << 6;
/// Rows per parallel chunk.
const CHUNK: usize = 1 << 16;

/// Where a compact ASCII `str`'s characters start (bytes from the object), probed once; `None`
/// when the probe does not confirm the layout this module reads.
fn header(py: Python<'_>) -> Option<usize> {
    static HEADER: OnceLock<Option<usize>> = OnceLock::new();
    *HEADER.get_or_init(|| probe(py))
}

/// Reads `T` at `offset` bytes into the object at `obj`.
///
/// # Safety
/// The object must be at least `offset + size_of::<T>()` bytes long and not change meanwhile.
#[inline(always)]
unsafe fn field<T: Copy>(obj: usize, offset: usize) -> T {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::read_unaligned((obj + offset) as *const T) }
}

/// The layout check: see the module's documentation.
fn probe(py: Python<'_>) -> Option<usize> {
    if cfg!(not(all(
        target_pointer_width = "64",
        target_endian = "little"
    ))) {
        return None; // the offsets and bit positions above are those of 64-bit little-endian
    }
    let ascii = PyString::new(py, "ab");
    let wide = PyString::new(py, "é");
    let str_type = std::ptr::addr_of_mut!(ffi::PyUnicode_Type) as usize;
    let (a, w) = (ascii.as_ptr() as usize, wide.as_ptr() as usize);
    // SAFETY: the GIL is held and both strings are alive; every `str` object is at least 40
    // bytes (object header, length, hash, state), the fields read here.
    unsafe {
        let mut size: ffi::Py_ssize_t = 0;
        let p = ffi::PyUnicode_AsUTF8AndSize(ascii.as_ptr(), &mut size);
        if p.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let head = (p as usize).checked_sub(a)?;
        let a_state: u32 = field(a, STATE);
        let w_state: u32 = field(w, STATE);
        let ok = (head == 40 || head == 48)
            && size == 2
            && field::<usize>(a, OB_TYPE) == str_type
            && field::<usize>(w, OB_TYPE) == str_type
            && field::<isize>(a, SIZE) == 2
            && field::<isize>(w, SIZE) == 1
            && a_state & (COMPACT | ASCII) == COMPACT | ASCII
            && w_state & (COMPACT | ASCII) == COMPACT;
        ok.then_some(head)
    }
}

/// Copies `len <= 16` bytes from `src` to `dst` with two overlapping loads and stores of 8 or
/// 4 bytes, or single bytes (no call per row; nothing read or written outside the `len`
/// bytes).
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, `len <= 16`.
#[inline(always)]
unsafe fn copy_short(dst: *mut u8, src: *const u8, len: usize) {
    use std::ptr::{read_unaligned as get, write_unaligned as put};
    // SAFETY: every access below lies within the first `len` bytes of `src` and `dst`.
    unsafe {
        if len >= 8 {
            put(dst.cast::<u64>(), get(src.cast::<u64>()));
            put(
                dst.add(len - 8).cast::<u64>(),
                get(src.add(len - 8).cast::<u64>()),
            );
        } else if len >= 4 {
            put(dst.cast::<u32>(), get(src.cast::<u32>()));
            put(
                dst.add(len - 4).cast::<u32>(),
                get(src.add(len - 4).cast::<u32>()),
            );
        } else if len > 0 {
            *dst = *src;
            *dst.add(len / 2) = *src.add(len / 2);
            *dst.add(len - 1) = *src.add(len - 1);
        }
    }
}

/// Rows ahead whose objects are asked for while a row is read (each object is a cache miss
/// of its own: ids are as many objects as rows).
const AHEAD: usize = 48;

/// Asks for the header of the object `objs[i]` (when there is one) to be brought into the
/// cache (x86-64; a no-op elsewhere).
#[inline(always)]
fn prefetch(objs: &[usize], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(&obj) = objs.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint: it reads nothing the program sees and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(obj as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (objs, i);
}

/// Why an item could not be read the fast way.
enum Miss {
    /// Not a plain compact ASCII `str`: the caller's checked path takes the whole list.
    Other,
    /// Longer than the cells, or ending in a NUL byte (which cells treat as padding).
    Cell,
}

/// The characters of a plain compact ASCII `str` at `obj`: where they start and how many.
///
/// # Safety
/// `obj` must be null or a live object that nothing changes meanwhile; `str_type` the address of
/// `str`'s type object, `head` the probed header size.
#[inline(always)]
unsafe fn ascii_at(obj: usize, str_type: usize, head: usize) -> Result<(*const u8, usize), Miss> {
    // SAFETY: the type pointer is in every object's header; for an exact `str`, its length and
    // state lie within the 40 bytes every `str` has, and a compact ASCII one keeps its `len`
    // characters from the probed header on.
    unsafe {
        if obj == 0 || field::<usize>(obj, OB_TYPE) != str_type {
            return Err(Miss::Other);
        }
        let state: u32 = field(obj, STATE);
        if state & (COMPACT | ASCII) != COMPACT | ASCII {
            return Err(Miss::Other);
        }
        let len = usize::try_from(field::<isize>(obj, SIZE)).map_err(|_| Miss::Other)?;
        Ok(((obj + head) as *const u8, len))
    }
}

/// A list's strings in the core's layouts.
pub(crate) enum Read {
    /// Cells of `width` bytes, each string's bytes then zeros (as a numpy `S` array): for
    /// strings of at most 16 bytes, the common case of ids and language codes; no offsets.
    Cells(Vec<u8>, usize),
    /// Per chunk of rows: their bytes one after the other, and each row's end within them (to
    /// be joined with [`crate::codes::join_chunks`]).
    Chunks(Vec<(Vec<u8>, Vec<u64>)>),
}

/// The list's strings read by all cores ([`Read::Cells`] when they are short, else
/// [`Read::Chunks`]); `None` when the layout is not confirmed or an item is not a plain
/// compact ASCII `str`.
pub(crate) fn read_ascii(list: &Bound<'_, PyList>) -> Option<Read> {
    let head = header(list.py())?;
    // SAFETY: the GIL is held (`list` is bound) by this thread until `read_items` returns, so
    // the list and its items neither change nor go away meanwhile.
    unsafe { read_items(list_items(list)?, head) }
}

/// The item pointers of `list`, read in place: `None` where the layout does not agree with the
/// API.
///
/// # Safety
/// The slice may be used only while the calling thread holds the GIL without a break (Python
/// code that runs could change the list).
unsafe fn list_items<'a>(list: &'a Bound<'_, PyList>) -> Option<&'a [usize]> {
    let n = list.len();
    let lp = list.as_ptr() as usize;
    // SAFETY: the GIL is held and `list` is a list (its size and item pointer are the first
    // fields after the object header); the pointer read is checked against the API before any
    // item is read through it, and the list's item array holds `n` pointers.
    unsafe {
        if field::<isize>(lp, SIZE) != isize::try_from(n).ok()? {
            return None;
        }
        checked_items(field(lp, LIST_ITEMS), n, |at| {
            ffi::PyList_GetItem(list.as_ptr(), at)
        })
    }
}

/// The strings of a tuple of `str` read like a list's ([`read_ascii`]); `None` where
/// [`tuple_items`] says no.
pub(crate) fn read_ascii_tuple(tuple: &Bound<'_, PyTuple>) -> Option<Read> {
    let head = header(tuple.py())?;
    // SAFETY: the GIL is held by this thread until `read_items` returns; a tuple never
    // changes, and it and its items live meanwhile.
    unsafe { read_items(tuple_items(tuple)?, head) }
}

/// The item pointers of `tuple`, read in place: they lie inside the tuple object, after its
/// size (Python 3.10-3.13) or after its size and a cached hash (3.14), checked against
/// `PyTuple_GetItem` at both ends; `None` where that says no or for other versions.
fn tuple_items<'a>(tuple: &'a Bound<'_, PyTuple>) -> Option<&'a [usize]> {
    let v = tuple.py().version_info();
    let items_at = match (v.major, v.minor) {
        (3, 10..=13) => 24,
        (3, 14) => 32,
        _ => return None,
    };
    let tp = tuple.as_ptr() as usize;
    // SAFETY: the GIL is held; a tuple of `n` items is at least its header plus `n` pointers
    // long, so its item array at `items_at` (on the version it is read for; checked against
    // the API at both ends) holds `n` pointers; a tuple never changes and holds its items as
    // long as it lives (the borrow).
    unsafe {
        checked_items(tp + items_at, tuple.len(), |at| {
            ffi::PyTuple_GetItem(tuple.as_ptr(), at)
        })
    }
}

/// The `n` item pointers at `array` when they agree with the API's items (`get`) at both ends.
///
/// # Safety
/// `array` must be readable for `n` pointers (any address when `n` is 0), and stay unchanged
/// while the slice is used; `get` must be safe to call for indexes below `n`.
unsafe fn checked_items<'a>(
    array: usize,
    n: usize,
    get: impl Fn(ffi::Py_ssize_t) -> *mut ffi::PyObject,
) -> Option<&'a [usize]> {
    if n == 0 {
        return Some(&[]);
    }
    for i in [0, n - 1] {
        let api = get(ffi::Py_ssize_t::try_from(i).ok()?) as usize;
        // SAFETY: `i < n` (the caller's contract).
        if api == 0 || api != unsafe { field::<usize>(array, 8 * i) } {
            return None;
        }
    }
    // SAFETY: the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(array as *const usize, n) })
}

/// The strings of a numpy object array's item pointers (`items`, C order) read like a list's
/// ([`read_ascii`]); `None` where that says no.
pub(crate) fn read_object_array(py: Python<'_>, items: &[Py<PyAny>]) -> Option<Read> {
    let head = header(py)?;
    // SAFETY: the array holds its items and cannot change while this thread holds the GIL
    // (`py`) and waits for the workers.
    unsafe { read_items(object_ptrs(items), head) }
}

/// A numpy object array's items as the object addresses the readers take.
fn object_ptrs(items: &[Py<PyAny>]) -> &[usize] {
    // SAFETY: `Py<PyAny>` is one non-null object pointer (`repr(transparent)`), the size and
    // alignment of `usize`; the slice borrows `items` for as long as it lives.
    unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<usize>(), items.len()) }
}

/// [`read_ascii`]'s work on the item pointers `items`.
///
/// # Safety
/// Every pointer must be a live object that nothing changes meanwhile (its container alive,
/// the GIL held by the calling thread for the whole call); `head` from [`header`].
unsafe fn read_items(items: &[usize], head: usize) -> Option<Read> {
    let str_type = std::ptr::addr_of_mut!(ffi::PyUnicode_Type) as usize;
    let n = items.len();
    if n == 0 {
        return Some(Read::Chunks(Vec::new()));
    }
    // the cell width from a sample of rows (a longer string found later: wider cells, once)
    let mut longest = 0;
    for j in 0..n.min(64) {
        // SAFETY: a live item (the caller's contract).
        match unsafe { ascii_at(items[j * n / n.min(64)], str_type, head) } {
            Ok((_, len)) => longest = longest.max(len),
            Err(_) => return None,
        }
    }
    let mut width = longest.max(1).next_power_of_two();
    while width <= 16 {
        match cells(items, width, str_type, head) {
            Ok(data) => return Some(Read::Cells(data, width)),
            Err(Miss::Other) => return None,
            Err(Miss::Cell) => width = if width < 16 { 16 } else { 32 },
        }
    }
    chunks(items, str_type, head).map(Read::Chunks)
}

/// Pass of [`Read::Cells`] of `width <= 16` bytes.
fn cells(items: &[usize], width: usize, str_type: usize, head: usize) -> Result<Vec<u8>, Miss> {
    // zeroed by the allocator (fresh pages are already zero): only the strings are written
    let mut data = vec![0u8; items.len() * width];
    data.par_chunks_mut(CHUNK * width)
        .zip(items.par_chunks(CHUNK))
        .try_for_each(|(out, objs)| {
            for (i, (cell, &obj)) in out.chunks_exact_mut(width).zip(objs).enumerate() {
                prefetch(objs, i + AHEAD);
                // SAFETY: a live item of the list (see `read_ascii`); `len <= width <= 16`
                // bytes are read from it and written to its cell.
                unsafe {
                    let (src, len) = ascii_at(obj, str_type, head)?;
                    if len > width || (len > 0 && *src.add(len - 1) == 0) {
                        return Err(Miss::Cell);
                    }
                    copy_short(cell.as_mut_ptr(), src, len);
                }
            }
            Ok(())
        })?;
    Ok(data)
}

/// Pass of [`Read::Chunks`].
fn chunks(items: &[usize], str_type: usize, head: usize) -> Option<Vec<(Vec<u8>, Vec<u64>)>> {
    items
        .par_chunks(CHUNK)
        .map(|objs| {
            let mut data: Vec<u8> = Vec::with_capacity(objs.len() * 24);
            let mut ends = Vec::with_capacity(objs.len());
            for (i, &obj) in objs.iter().enumerate() {
                prefetch(objs, i + AHEAD);
                // SAFETY: a live item of the list (see `read_ascii`), readable for `len` bytes.
                unsafe {
                    let (src, len) = ascii_at(obj, str_type, head).ok()?;
                    data.extend_from_slice(std::slice::from_raw_parts(src, len));
                }
                ends.push(data.len() as u64);
            }
            Some((data, ends))
        })
        .collect()
}

/// Rows of plain compact ASCII `str` objects read in place as the short-id pool path reads
/// keys ([`PackedRows`]): a row that is anything else, or longer than 11 bytes, reads as
/// `None` (the path declines).
struct StrRows<'a> {
    items: &'a [usize],
    str_type: usize,
    head: usize,
}

impl PackedRows for StrRows<'_> {
    fn rows(&self) -> Option<usize> {
        Some(self.items.len())
    }

    #[inline(always)]
    fn packed(&self, row: usize) -> Option<u128> {
        let obj = *self.items.get(row)?;
        // SAFETY: a live item that nothing changes (see `pool_from_str_objects`); a compact
        // ASCII `str` holds its `len` characters from the probed header on.
        unsafe {
            let (src, len) = ascii_at(obj, self.str_type, self.head).ok()?;
            pack_short(std::slice::from_raw_parts(src, len), row as u32)
        }
    }

    #[inline(always)]
    fn prefetch(&self, row: usize) {
        prefetch(self.items, row);
    }
}

/// A spec's container, and the borrow of its numpy object array when it is one.
type SpecItems<'py> = (Bound<'py, PyAny>, Option<PyReadonlyArray1<'py, Py<PyAny>>>);

/// The item pointers of a spec `("list", list or tuple)` or `("objects", 1-d object array)`
/// read in place, with the array's borrow that keeps them; `None` for any other spec or
/// container.
fn spec_items<'py>(spec: &Bound<'py, PyAny>) -> Option<SpecItems<'py>> {
    let spec = spec.cast::<PyTuple>().ok()?;
    if spec.len() != 2 {
        return None;
    }
    let kind = spec.get_item(0).ok()?;
    let kind = kind.cast::<PyString>().ok()?.to_str().ok()?.to_owned();
    let obj = spec.get_item(1).ok()?;
    match kind.as_str() {
        "list" => Some((obj, None)),
        "objects" => {
            let arr = obj.extract::<PyReadonlyArray1<'py, Py<PyAny>>>().ok()?;
            Some((obj, Some(arr)))
        }
        _ => None,
    }
}

/// The item pointers behind [`spec_items`]'s answer.
///
/// # Safety
/// As [`list_items`]: to be used only while this thread holds the GIL without a break.
unsafe fn items_of<'a>(
    obj: &'a Bound<'_, PyAny>,
    arr: &'a Option<PyReadonlyArray1<'_, Py<PyAny>>>,
) -> Option<&'a [usize]> {
    if let Some(arr) = arr {
        return Some(object_ptrs(arr.as_slice().ok()?));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        // SAFETY: the caller's contract.
        return unsafe { list_items(list) };
    }
    tuple_items(obj.cast::<PyTuple>().ok()?)
}

/// The pool of string group ids and languages each given as a spec `("list", list or tuple
/// of str)` or `("objects", numpy object array of str)`, built by the short-id path
/// ([`pool_from_strings`]) reading the `str` objects in place: no copy of the strings, one
/// pass less over the rows. `None` when either spec is something else, an item is not a plain
/// compact ASCII `str`, or the path declines (a long id, a repeated row...): the caller reads
/// the strings the general way.
///
/// The GIL stays held by this thread for the whole call: the worker threads read the objects
/// (and call nothing in Python, touch no reference count) while no Python code can run.
pub(crate) fn pool_from_str_objects(
    groups: &Bound<'_, PyAny>,
    langs: &Bound<'_, PyAny>,
) -> Option<(PairPool, Vec<u32>)> {
    let head = header(groups.py())?;
    let str_type = std::ptr::addr_of_mut!(ffi::PyUnicode_Type) as usize;
    let (g_obj, g_arr) = spec_items(groups)?;
    let (l_obj, l_arr) = spec_items(langs)?;
    // SAFETY: this thread holds the GIL (the bound specs) until `pool_from_strings` returns:
    // no Python code runs meanwhile, so the containers (held by the specs) and their items
    // neither change nor go away.
    let (g, l) = unsafe { (items_of(&g_obj, &g_arr)?, items_of(&l_obj, &l_arr)?) };
    let rows = |items| StrRows {
        items,
        str_type,
        head,
    };
    pool_from_strings(&rows(g), &rows(l))
}
