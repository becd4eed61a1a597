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
 * new_payload(size) -> (bytes, memoryview)
 *     A bytes object of size bytes, not filled yet, and a writable view of
 *     them: a large frame's payload is read from the socket straight into it
 *     and unmasked in place, then handed over as the message, with no copy.
 *     The view holds the bytes object (through a small buffer object), so it
 *     never outlives the memory it writes; the caller lets nobody else see
 *     the bytes until it is filled.
 *
 * unmask_in_place(buffer, mask, offset)
 *     XORs a writable buffer with the mask as seen from offset bytes into the
 *     payload (RFC 6455 section 5.3), in place.
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

/* The module's state: the type of the buffer object behind new_payload()'s view. */
typedef struct {
    PyTypeObject *payload_buffer_type;
} ModuleState;

/* A writable buffer over the bytes of a payload being filled. */
typedef struct {
    PyObject_HEAD
    PyObject *payload; /* the bytes object, still private to its filler */
} PayloadBufferObject;

static int
PayloadBuffer_getbuffer(PayloadBufferObject *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, PyBytes_AS_STRING(self->payload),
                             PyBytes_GET_SIZE(self->payload), 0, flags);
}

static void
PayloadBuffer_dealloc(PayloadBufferObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    Py_XDECREF(self->payload);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyType_Slot PayloadBuffer_slots[] = {
    {Py_tp_doc, "The writable memory of a payload being filled (see new_payload())."},
    {Py_tp_dealloc, (void *)PayloadBuffer_dealloc},
    {Py_bf_getbuffer, (void *)PayloadBuffer_getbuffer},
    {0, NULL},
};

static PyType_Spec PayloadBuffer_spec = {
    .name = "wskit.speedups.frames.PayloadBuffer",
    .basicsize = sizeof(PayloadBufferObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = PayloadBuffer_slots,
};

static PyObject *
new_payload(PyObject *module, PyObject *arg)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    PayloadBufferObject *buffer;
    PyObject *view;

    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
    buffer = PyObject_New(PayloadBufferObject, state->payload_buffer_type);
    if (buffer == NULL) {
        return NULL;
    }
    buffer->payload = PyBytes_FromStringAndSize(NULL, size);
    if (buffer->payload == NULL) {
        Py_DECREF(buffer);
        return NULL;
    }
    view = PyMemoryView_FromObject((PyObject *)buffer);
    if (view == NULL) {
        Py_DECREF(buffer);
        return NULL;
    }
    /* (bytes, view): the view owns the buffer object, which owns the bytes. */
    Py_INCREF(buffer->payload);
    Py_DECREF(buffer);
    return Py_BuildValue("NN", buffer->payload, view);
}

static PyObject *
unmask_in_place(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    Py_ssize_t offset;
    unsigned char key[4];
    int k;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "unmask_in_place() takes exactly 3 arguments");
        return NULL;
    }
    offset = PyLong_AsSsize_t(args[2]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (mask.len != 4) {
        PyBuffer_Release(&mask);
        PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
        return NULL;
    }
    for (k = 0; k < 4; k++) {
        key[k] = ((const unsigned char *)mask.buf)[(offset + k) & 3];
    }
    PyBuffer_Release(&mask);
    if (PyObject_GetBuffer(args[0], &data, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    xor_mask((const unsigned char *)data.buf, (unsigned char *)data.buf, data.len, key);
    PyBuffer_Release(&data);
    Py_RETURN_NONE;
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
    {"new_payload", (PyCFunction)new_payload, METH_O,
     "new_payload(size) -> (bytes, memoryview)\n\n"
     "A payload of size bytes to fill through the writable view before anyone sees it."},
    {"unmask_in_place", (PyCFunction)(void (*)(void))unmask_in_place, METH_FASTCALL,
     "unmask_in_place(buffer, mask, offset)\n\n"
     "XOR a writable buffer with the mask as seen from offset bytes into the payload."},
    {NULL, NULL, 0, NULL},
};

static int
frames_exec(PyObject *module)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);

    state->payload_buffer_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &PayloadBuffer_spec, NULL);
    return state->payload_buffer_type == NULL ? -1 : 0;
}

static int
frames_traverse(PyObject *module, visitproc visit, void *arg)
{
    Py_VISIT(((ModuleState *)PyModule_GetState(module))->payload_buffer_type);
    return 0;
}

static int
frames_clear(PyObject *module)
{
    Py_CLEAR(((ModuleState *)PyModule_GetState(module))->payload_buffer_type);
    return 0;
}

static void
frames_free(void *module)
{
    (void)frames_clear((PyObject *)module);
}

/* Multi-phase init, its one type in the module's state: no static state, so
   every interpreter may load it. It declares the GIL needed (Py_mod_gil) as
   the rest of wskit's C code does: a free-threaded build then turns the GIL
   on when it loads. */
static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, (void *)frames_exec},
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
    .m_size = sizeof(ModuleState),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = frames_traverse,
    .m_clear = frames_clear,
    .m_free = frames_free,
};

PyMODINIT_FUNC
PyInit_frames(void)
{
    return PyModuleDef_Init(&module);
}
