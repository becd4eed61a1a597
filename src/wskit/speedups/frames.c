/* Frame kernels of the protocol core, compiled at install time.
 *
 * apply_mask(data, mask) -> bytes
 *     XORs every byte of data with the 4-byte key repeated (RFC 6455 section
 *     5.3), eight bytes at a time on the key widened to 64 bits, which the
 *     compiler turns into vector instructions where the target has them.
 *
 * parse_simple(buf, pos, expect_mask, max_size, events, event_type) -> int
 *     The common case of Connection._parse: from pos, every complete frame
 *     that is a whole text or binary message (FIN set, no RSV bit, masked as
 *     the side requires, length in its shortest form and within max_size,
 *     text valid UTF-8) is unmasked, decoded and appended to events as
 *     event_type(data, True). It stops at the first frame that is anything
 *     else, incomplete, or wrong, and returns its position: the Python parser
 *     takes it from there, so every rule and every error stays in one place
 *     (wskit.protocol.connection), and this only skips its slow steps.
 *
 * wskit.protocol holds the pure-Python versions, the reference and fallback.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* out[i] = in[i] ^ key[i % 4] for i < n (in and out may be the same). */
static void
xor_mask(const unsigned char *in, unsigned char *out, Py_ssize_t n, const unsigned char *key)
{
    Py_ssize_t i = 0;
    uint32_t key32;
    uint64_t key64;

    memcpy(&key32, key, 4);
    key64 = ((uint64_t)key32 << 32) | key32;
    /* memcpy keeps unaligned loads and stores well defined; compilers emit
       plain moves for it. */
    for (; i + 8 <= n; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, in + i, 8);
        chunk ^= key64;
        memcpy(out + i, &chunk, 8);
    }
    for (; i < n; i++) {
        out[i] = in[i] ^ key[i & 3];
    }
}

static PyObject *
apply_mask(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *result = NULL;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_mask() takes exactly 2 arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    xor_mask((const unsigned char *)data.buf, (unsigned char *)PyBytes_AS_STRING(result),
             data.len, (const unsigned char *)mask.buf);
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

/* One simple frame at p (avail bytes): its event appended, *size set to the
   frame's size; 0 when it is not simple or not complete (nothing done), -1 on
   a Python error. */
static int
parse_one(const unsigned char *p, Py_ssize_t avail, int expect_mask, Py_ssize_t max_size,
          PyObject *events, PyObject *event_type, Py_ssize_t *size)
{
    unsigned char b0, b1;
    Py_ssize_t head = 2, length;
    PyObject *data, *event;
    int result;

    if (avail < 2) {
        return 0;
    }
    b0 = p[0];
    b1 = p[1];
    if ((b0 != 0x81 && b0 != 0x82) || ((b1 & 0x80) != 0) != (expect_mask != 0)) {
        return 0;
    }
    length = b1 & 0x7F;
    if (length == 126) {
        if (avail < 4) {
            return 0;
        }
        length = ((Py_ssize_t)p[2] << 8) | p[3];
        if (length < 126) {
            return 0;
        }
        head = 4;
    }
    else if (length == 127) {
        uint64_t wide = 0;
        int k;

        if (avail < 10) {
            return 0;
        }
        for (k = 0; k < 8; k++) {
            wide = (wide << 8) | p[2 + k];
        }
        /* The Python parser reports every bad length; frames this large are
           never the common case anyway. */
        if (wide < 65536 || wide > (uint64_t)PY_SSIZE_T_MAX / 2) {
            return 0;
        }
        length = (Py_ssize_t)wide;
        head = 10;
    }
    if (max_size >= 0 && length > max_size) {
        return 0;
    }
    if (expect_mask) {
        head += 4;
    }
    if (avail - head < length) {
        return 0;
    }
    data = PyBytes_FromStringAndSize(NULL, length);
    if (data == NULL) {
        return -1;
    }
    if (expect_mask) {
        xor_mask(p + head, (unsigned char *)PyBytes_AS_STRING(data), length, p + head - 4);
    }
    else {
        memcpy(PyBytes_AS_STRING(data), p + head, (size_t)length);
    }
    if (b0 == 0x81) {
        PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(data), length, NULL);

        Py_DECREF(data);
        if (text == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                return -1;
            }
            PyErr_Clear(); /* the Python parser fails the connection with 1007 */
            return 0;
        }
        data = text;
    }
    /* event_type(data, True), made as tuple.__new__ makes a tuple subclass. */
    event = ((PyTypeObject *)event_type)->tp_alloc((PyTypeObject *)event_type, 2);
    if (event == NULL) {
        Py_DECREF(data);
        return -1;
    }
    PyTuple_SET_ITEM(event, 0, data); /* the reference to data moves in */
    Py_INCREF(Py_True);
    PyTuple_SET_ITEM(event, 1, Py_True);
    result = PyList_Append(events, event);
    Py_DECREF(event);
    if (result < 0) {
        return -1;
    }
    *size = head + length;
    return 1;
}

static PyObject *
parse_simple(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, max_size, size = 0;
    int expect_mask, found;
    PyObject *events, *event_type;

    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "parse_simple() takes exactly 6 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    expect_mask = PyObject_IsTrue(args[2]);
    if (expect_mask < 0) {
        return NULL;
    }
    max_size = PyLong_AsSsize_t(args[3]);
    if (max_size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    events = args[4];
    event_type = args[5];
    if (!PyList_Check(events)) {
        PyErr_SetString(PyExc_TypeError, "events must be a list");
        return NULL;
    }
    if (!PyType_Check(event_type) ||
        !PyType_IsSubtype((PyTypeObject *)event_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "event_type must be a tuple subclass");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (pos < 0 || pos > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos out of the buffer");
        return NULL;
    }
    while ((found = parse_one((const unsigned char *)view.buf + pos, view.len - pos, expect_mask,
                              max_size, events, event_type, &size)) > 0) {
        pos += size;
    }
    PyBuffer_Release(&view);
    if (found < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(pos);
}

static PyMethodDef methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask repeated."},
    {"parse_simple", (PyCFunction)(void (*)(void))parse_simple, METH_FASTCALL,
     "parse_simple(buf, pos, expect_mask, max_size, events, event_type) -> int\n\n"
     "Parse the whole-message frames from pos on; return where the rest starts."},
    {NULL, NULL, 0, NULL},
};

/* Multi-phase init without state: the module keeps none, so every interpreter
   may load it. It declares the GIL needed (Py_mod_gil) as the rest of wskit's
   C code does: a free-threaded build then turns the GIL on when it loads. */
static PyModuleDef_Slot slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wskit.speedups.frames",
    .m_doc = "Frame kernels of wskit.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit_frames(void)
{
    return PyModuleDef_Init(&module);
}
