"""Python objects built inside nopython kernels, through the C API.

The common query (:func:`matching.kernels_query.k_query_fast`) returns its answer
as the final ``list[Candidate]``: the kernel calls ``PyList_New``,
``PyUnicode_FromKindAndData``, ``PyFloat_FromDouble`` and ``PyType_GenericAlloc``
itself, so that no numba string or list is allocated, boxed and freed, and no
Python code runs to turn text into ids and pairs into candidates.  With cold caches
every distinct piece of code run costs a memory access: a C call per object is the
shortest path there is.

A :data:`pyref` value is an owned reference (a ``PyObject *``); numba does no
reference counting on it.  A kernel returning one hands the reference to its caller
(the boxing is the pointer itself).  The GIL is held: kernels using these are not
``nogil``.  Every allocating call may return NULL (MemoryError set): the builders
check, release what they made and return NULL, which the caller sees as the
exception.

The kernels that inline these builders are cached under a stamp of the whole
package's source (:mod:`matching.jit`): a change here recompiles them.
"""

from __future__ import annotations

from typing import Any, Final

from llvmlite import ir
from numba.core import types as _types
from numba.core.pythonapi import NativeValue as _NativeValue
from numba.extending import box as _box
from numba.extending import intrinsic as _intrinsic
from numba.extending import models as _models
from numba.extending import register_model as _register_model
from numba.extending import unbox as _unbox

# numba is untyped: go through Any-typed aliases
types: Any = _types
models: Any = _models
intrinsic: Any = _intrinsic
box: Any = _box
unbox: Any = _unbox
NativeValue: Any = _NativeValue
register_model: Any = _register_model

#: PyUnicode_1BYTE_KIND
_UCS1: Final = 1
#: characters of a canonical UUID
UUID_LEN: Final = 36


class PyRefType(types.Opaque):  # type: ignore[misc]  # subclass of an untyped class
    """An owned ``PyObject *`` in nopython code."""

    def __init__(self) -> None:
        super().__init__(name="PyRef")


pyref: Final[Any] = PyRefType()
register_model(PyRefType)(models.OpaqueModel)


@box(PyRefType)  # type: ignore[untyped-decorator]
def _box_pyref(typ: Any, val: Any, c: Any) -> Any:
    return c.builder.bitcast(val, c.pyapi.pyobj)


@unbox(PyRefType)  # type: ignore[untyped-decorator]
def _unbox_pyref(typ: Any, obj: Any, c: Any) -> Any:
    return NativeValue(obj)  # borrowed: the caller's argument


#: byte offsets fixed by CPython's (non-limited) C API: PyObject.ob_type and
#: PyFloatObject.ob_fval (``Py_TYPE`` and ``PyFloat_AS_DOUBLE`` read them directly)
_OB_TYPE: Final = 8
_OB_FVAL: Final = 16


def _field(builder: Any, obj: Any, offset: int, ty: Any) -> Any:
    ptr = builder.gep(obj, [ir.Constant(ir.IntType(64), offset)])
    return builder.load(builder.bitcast(ptr, ty.as_pointer()))


def _fn(pyapi: Any, name: str, ret: Any, *args: Any) -> Any:
    return pyapi._get_function(ir.FunctionType(ret, list(args)), name=name)


def _is_null(builder: Any, ptr: Any) -> Any:
    return builder.icmp_unsigned("==", ptr, ir.Constant(ptr.type, None))


def _list_new_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    return context.get_python_api(builder).list_new(args[0])


def _list_new_typer(typingctx: Any, n: Any) -> Any:
    if not isinstance(n, types.Integer):
        return None
    return pyref(types.intp), _list_new_codegen


#: ``py_list_new(n)``: a new list of ``n`` NULL items (NULL on MemoryError)
py_list_new: Final[Any] = intrinsic(_list_new_typer)


def _none_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    return context.get_python_api(builder).make_none()


def _none_typer(typingctx: Any) -> Any:
    return pyref(), _none_codegen


#: ``py_none()``: a new reference to None
py_none: Final[Any] = intrinsic(_none_typer)


def _is_null_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    return _is_null(builder, args[0])


def _is_null_typer(typingctx: Any, obj: Any) -> Any:
    if not isinstance(obj, PyRefType):
        return None
    return types.boolean(pyref), _is_null_codegen


#: ``py_is_null(obj)``: whether an allocation failed
py_is_null: Final[Any] = intrinsic(_is_null_typer)


def _decref_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    context.get_python_api(builder).decref(args[0])
    return context.get_dummy_value()


def _decref_typer(typingctx: Any, obj: Any) -> Any:
    if not isinstance(obj, PyRefType):
        return None
    return types.void(pyref), _decref_codegen


#: ``py_decref(obj)``: release an owned reference (obj not NULL)
py_decref: Final[Any] = intrinsic(_decref_typer)


def _list_set_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    context.get_python_api(builder).list_setitem(*args)  # steals the item
    return context.get_dummy_value()


def _list_set_typer(typingctx: Any, lst: Any, i: Any, item: Any) -> Any:
    if not (isinstance(lst, PyRefType) and isinstance(item, PyRefType)):
        return None
    return types.void(pyref, types.intp, pyref), _list_set_codegen


#: ``py_list_set(lst, i, item)``: store ``item`` (not NULL) in a new list, stealing it
py_list_set: Final[Any] = intrinsic(_list_set_typer)


def _candidate_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    pyapi = context.get_python_api(builder)
    cls, text, off, dist, score = args
    obj, ssize, i32 = pyapi.pyobj, pyapi.py_ssize_t, ir.IntType(32)
    ary = context.make_array(sig.args[1])(context, builder, text)
    ptr = builder.gep(builder.bitcast(ary.data, ir.IntType(8).as_pointer()), [off])
    alloc = _fn(pyapi, "PyType_GenericAlloc", obj, obj, ssize)
    tup = builder.call(alloc, [builder.inttoptr(cls, obj), ir.Constant(ssize, 3)])
    items = (
        pyapi.string_from_kind_and_data(ir.Constant(i32, _UCS1), ptr, ir.Constant(ssize, UUID_LEN)),
        pyapi.float_from_double(dist),
        pyapi.float_from_double(score),
    )
    failed = _is_null(builder, tup)
    for it in items:
        failed = builder.or_(failed, _is_null(builder, it))
    with builder.if_else(failed, likely=False) as (bad, good):
        with bad:
            for it in (tup, *items):
                pyapi.decref(it)  # Py_XDECREF: NULL is ignored
        with good:
            for j, it in enumerate(items):
                pyapi.tuple_setitem(tup, j, it)  # steals the item
            # a str and two floats cannot be part of a reference cycle: untracked, the
            # candidate costs the cyclic collector nothing (CPython untracks such exact
            # tuples itself at their first collection, but never a tuple subclass)
            untrack = _fn(pyapi, "PyObject_GC_UnTrack", ir.VoidType(), obj)
            builder.call(untrack, [tup])
    null = ir.Constant(obj, None)
    return builder.select(failed, null, tup)


def _candidate_typer(typingctx: Any, cls: Any, text: Any, off: Any, dist: Any, score: Any) -> Any:
    if not (isinstance(text, types.Array) and text.dtype == types.uint8 and text.layout == "C"):
        return None
    return pyref(types.int64, text, types.intp, types.float64, types.float64), _candidate_codegen


#: ``py_candidate(cls, text, off, dist, score)``: a new ``cls`` instance (a 3-tuple
#: subclass: :class:`matching.policy.Candidate`, whose address is ``cls``) holding the
#: 36 ASCII characters of the C-contiguous uint8 array ``text`` at byte ``off`` as a
#: str, then ``dist`` and ``score``, untracked by the cyclic GC; NULL on MemoryError
#: (nothing left allocated)
py_candidate: Final[Any] = intrinsic(_candidate_typer)


def _as_float_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    pyapi = context.get_python_api(builder)
    obj = args[0]
    exact = builder.icmp_unsigned(
        "==", _field(builder, obj, _OB_TYPE, pyapi.pyobj), pyapi.get_c_object("PyFloat_Type")
    )
    nan = ir.Constant(ir.DoubleType(), float("nan"))
    with builder.if_else(exact) as (yes, no):
        with yes:
            val = _field(builder, obj, _OB_FVAL, ir.DoubleType())
            bb_yes = builder.block
        with no:
            bb_no = builder.block
    phi = builder.phi(ir.DoubleType())
    phi.add_incoming(val, bb_yes)
    phi.add_incoming(nan, bb_no)
    return phi


def _as_float_typer(typingctx: Any, obj: Any) -> Any:
    if not isinstance(obj, PyRefType):
        return None
    return types.float64(pyref), _as_float_codegen


#: ``py_as_float(obj)``: the value of an exact ``float`` (borrowed ``obj``); NaN for
#: any other type, which every caller's range check rejects
py_as_float: Final[Any] = intrinsic(_as_float_typer)


def _as_int_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    pyapi = context.get_python_api(builder)
    obj = args[0]
    i64 = ir.IntType(64)
    exact = builder.icmp_unsigned(
        "==", _field(builder, obj, _OB_TYPE, pyapi.pyobj), pyapi.get_c_object("PyLong_Type")
    )
    flag = builder.alloca(ir.IntType(32))
    with builder.if_else(exact) as (yes, no):
        with yes:
            conv = _fn(pyapi, "PyLong_AsLongLongAndOverflow", i64, pyapi.pyobj, flag.type)
            val = builder.call(conv, [obj, flag])  # -1 on overflow, no exception
            bb_yes = builder.block
        with no:
            bb_no = builder.block
    phi = builder.phi(i64)
    phi.add_incoming(val, bb_yes)
    phi.add_incoming(ir.Constant(i64, -1), bb_no)
    return phi


def _as_int_typer(typingctx: Any, obj: Any) -> Any:
    if not isinstance(obj, PyRefType):
        return None
    return types.int64(pyref), _as_int_codegen


#: ``py_as_int(obj)``: the value of an exact ``int`` (not a bool; borrowed ``obj``);
#: -1 for any other type and on overflow
py_as_int: Final[Any] = intrinsic(_as_int_typer)


def _dict_int_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    pyapi = context.get_python_api(builder)
    dic = builder.inttoptr(args[0], pyapi.pyobj)
    i64 = ir.IntType(64)
    val = pyapi.dict_getitem(dic, args[1])  # borrowed; NULL if missing or unhashable
    found = builder.icmp_unsigned("!=", val, ir.Constant(val.type, None))
    with builder.if_else(found) as (yes, no):
        with yes:
            num = pyapi.long_as_longlong(val)
            bb_yes = builder.block
        with no:
            bb_no = builder.block
    phi = builder.phi(i64)
    phi.add_incoming(num, bb_yes)
    phi.add_incoming(ir.Constant(i64, -1), bb_no)
    return phi


def _dict_int_typer(typingctx: Any, dic: Any, key: Any) -> Any:
    if not isinstance(key, PyRefType):
        return None
    return types.int64(types.int64, pyref), _dict_int_codegen


#: ``py_dict_int(dict_address, key)``: ``dict[key]`` of a ``dict[str, int]`` whose
#: address is ``dict_address`` (``PyDict_GetItem``: errors suppressed); -1 if absent
py_dict_int: Final[Any] = intrinsic(_dict_int_typer)


def _str_utf8_codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    pyapi = context.get_python_api(builder)
    obj = args[0]
    i64 = ir.IntType(64)
    exact = builder.icmp_unsigned(
        "==", _field(builder, obj, _OB_TYPE, pyapi.pyobj), pyapi.get_c_object("PyUnicode_Type")
    )
    size = builder.alloca(pyapi.py_ssize_t)
    with builder.if_else(exact) as (yes, no):
        with yes:
            conv = _fn(pyapi, "PyUnicode_AsUTF8AndSize", pyapi.cstring, pyapi.pyobj, size.type)
            data = builder.call(conv, [obj, size])  # the str's own bytes when ASCII
            failed = _is_null(builder, data)
            with builder.if_then(failed, likely=False):
                pyapi.err_clear()
            addr = builder.ptrtoint(data, i64)
            n = builder.select(failed, ir.Constant(i64, -1), builder.load(size))
            bb_yes = builder.block
        with no:
            bb_no = builder.block
    p_addr = builder.phi(i64)
    p_addr.add_incoming(addr, bb_yes)
    p_addr.add_incoming(ir.Constant(i64, 0), bb_no)
    p_len = builder.phi(i64)
    p_len.add_incoming(n, bb_yes)
    p_len.add_incoming(ir.Constant(i64, -1), bb_no)
    return context.make_tuple(builder, sig.return_type, (p_addr, p_len))


def _str_utf8_typer(typingctx: Any, obj: Any) -> Any:
    if not isinstance(obj, PyRefType):
        return None
    return types.UniTuple(types.int64, 2)(pyref), _str_utf8_codegen


#: ``py_str_utf8(obj)``: (address, length) of the UTF-8 bytes of an exact ``str``
#: (``PyUnicode_AsUTF8AndSize``: the string's own data when it is ASCII; valid while
#: ``obj`` lives); (0, -1) for any other type
py_str_utf8: Final[Any] = intrinsic(_str_utf8_typer)
