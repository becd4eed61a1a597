/* Writing frames straight to the socket, one connection or thousands at once.
 *
 * asyncio's transport.write() on an idle socket ends in one send() anyway; the
 * Python around it (the call, its checks, socket.send's argument parsing) costs
 * as much as the system call for a small frame, and a broadcast pays it once
 * per receiver. This module holds the C side of wskit.asyncio.direct_write:
 *
 * Writer(transport, fd, protocol, open_state, plain, check_closing)
 *     One connection's writer. write(data) sends data on the socket at once
 *     when the transport holds nothing queued, and hands what the socket did
 *     not take (all of it on EAGAIN or an error, which the transport then
 *     meets and reports) to transport.write(); ordering holds because nothing
 *     is ever queued ahead of a direct send. fd is -1 where only the
 *     transport may write (TLS, other transports, a closing connection).
 *
 * fanout(items, frame, max_buffer, skip) -> (written, left)
 *     Writes one frame to the writer (the `_writer` attribute) of every item
 *     but `skip`, in one C loop. Items it cannot serve are returned in `left`
 *     for the caller's own path: no writer, a frame of their own needed
 *     (compression, client masking), a fragmented message being sent, a
 *     connection no longer open, or more than max_buffer bytes queued.
 *
 * The Python fallback in direct_write.py has the same behaviour; the test
 * suite runs both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

static PyObject *str_is_closing;
static PyObject *str_get_write_buffer_size;
static PyObject *str_write;
static PyObject *str_state;
static PyObject *str_close_sent;
static PyObject *str_writer;

typedef struct {
    PyObject_HEAD
    PyObject *transport;
    PyObject *protocol;   /* the sans-I/O core: its state says whether frames may go */
    PyObject *open_state; /* the value of protocol.state while open */
    int fd;
    char plain;         /* takes the frame every plain connection takes */
    char busy;          /* a fragmented message is being sent */
    char queued;        /* the transport may hold unsent bytes */
    char check_closing; /* ask transport.is_closing() before each write */
} WriterObject;

static PyTypeObject WriterType;

/* 1: closing, 0: not, -1: error. */
static int
transport_closing(WriterObject *self)
{
    PyObject *flag;
    int closing;

    if (!self->check_closing) {
        return 0;
    }
    flag = PyObject_CallMethodNoArgs(self->transport, str_is_closing);
    if (flag == NULL) {
        return -1;
    }
    closing = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    return closing;
}

/* The transport's unsent bytes, 0 when it is known to hold none; -1 on error. */
static Py_ssize_t
queued_bytes(WriterObject *self)
{
    PyObject *size_obj;
    Py_ssize_t size;

    if (!self->queued) {
        return 0;
    }
    size_obj = PyObject_CallMethodNoArgs(self->transport, str_get_write_buffer_size);
    if (size_obj == NULL) {
        return -1;
    }
    size = PyLong_AsSsize_t(size_obj);
    Py_DECREF(size_obj);
    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (size == 0 && self->fd >= 0) {
        self->queued = 0;
    }
    return size;
}

static int
transport_write(WriterObject *self, PyObject *data)
{
    PyObject *result = PyObject_CallMethodOneArg(self->transport, str_write, data);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    self->queued = 1;
    return 0;
}

/* Write data, the transport known to be open; 0 or -1 on error. */
static int
write_data(WriterObject *self, PyObject *data)
{
    Py_buffer view;
    ssize_t sent;
    Py_ssize_t queued;

    if (self->fd < 0) {
        return transport_write(self, data);
    }
    queued = queued_bytes(self);
    if (queued < 0) {
        return -1;
    }
    if (queued > 0) {
        return transport_write(self, data);
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    do {
        sent = send(self->fd, view.buf, (size_t)view.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent == view.len) {
        PyBuffer_Release(&view);
        return 0;
    }
    if (sent <= 0) {
        /* EAGAIN, or an error the transport will meet and report itself. */
        PyBuffer_Release(&view);
        return transport_write(self, data);
    }
    {
        PyObject *rest = PyBytes_FromStringAndSize((const char *)view.buf + sent, view.len - sent);
        int result;

        PyBuffer_Release(&view);
        if (rest == NULL) {
            return -1;
        }
        result = transport_write(self, rest);
        Py_DECREF(rest);
        return result;
    }
}

static int
Writer_init(WriterObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"transport", "fd", "protocol", "open_state", "plain", "check_closing",
                             NULL};
    PyObject *transport, *protocol, *open_state;
    int fd, plain, check_closing;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiOOpp", kwlist, &transport, &fd, &protocol,
                                     &open_state, &plain, &check_closing)) {
        return -1;
    }
    Py_INCREF(transport);
    Py_XSETREF(self->transport, transport);
    Py_INCREF(protocol);
    Py_XSETREF(self->protocol, protocol);
    Py_INCREF(open_state);
    Py_XSETREF(self->open_state, open_state);
    self->fd = fd;
    self->plain = (char)plain;
    self->check_closing = (char)check_closing;
    self->busy = 0;
    /* Whatever was written before (the handshake) may still be queued. */
    self->queued = 1;
    return 0;
}

static int
Writer_traverse(WriterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->transport);
    Py_VISIT(self->protocol);
    Py_VISIT(self->open_state);
    return 0;
}

static int
Writer_clear(WriterObject *self)
{
    Py_CLEAR(self->transport);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->open_state);
    return 0;
}

static void
Writer_dealloc(WriterObject *self)
{
    PyObject_GC_UnTrack(self);
    Writer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Writer_write(WriterObject *self, PyObject *data)
{
    int closing = transport_closing(self);

    if (closing < 0) {
        return NULL;
    }
    if (closing) {
        Py_RETURN_FALSE;
    }
    if (write_data(self, data) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
Writer_detach(WriterObject *self, PyObject *Py_UNUSED(ignored))
{
    self->fd = -1;
    self->check_closing = 1;
    self->queued = 1;
    Py_RETURN_NONE;
}

/* 1 when the protocol core is open with no close frame sent, 0 if not, -1 on error. */
static int
protocol_open(WriterObject *self)
{
    PyObject *value;
    int open;

    value = PyObject_GetAttr(self->protocol, str_state);
    if (value == NULL) {
        return -1;
    }
    open = value == self->open_state;
    Py_DECREF(value);
    if (!open) {
        return 0;
    }
    value = PyObject_GetAttr(self->protocol, str_close_sent);
    if (value == NULL) {
        return -1;
    }
    open = value == Py_None;
    Py_DECREF(value);
    return open;
}

static PyMethodDef Writer_methods[] = {
    {"write", (PyCFunction)Writer_write, METH_O,
     "write(data) -> bool\n\nWrite data now (see the module); False, writing nothing, when the\n"
     "transport is closing."},
    {"detach", (PyCFunction)Writer_detach, METH_NOARGS,
     "detach()\n\nStop sending on the socket directly: the connection is closing or lost,\n"
     "and its descriptor may soon belong to another socket."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Writer_members[] = {
    {"transport", T_OBJECT, offsetof(WriterObject, transport), READONLY, "The transport."},
    {"fd", T_INT, offsetof(WriterObject, fd), READONLY,
     "The socket sent on directly, or -1."},
    {"plain", T_BOOL, offsetof(WriterObject, plain), READONLY,
     "Whether fanout() may write the common frame to this connection."},
    {"busy", T_BOOL, offsetof(WriterObject, busy), 0,
     "Set while a fragmented message is being sent: fanout() leaves it alone."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wskit.speedups.write.Writer",
    .tp_doc = "Writer(transport, fd, protocol, open_state, plain, check_closing)\n\n"
              "Writes one connection's frames, on the socket directly when nothing is queued.",
    .tp_basicsize = sizeof(WriterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_traverse = (traverseproc)Writer_traverse,
    .tp_clear = (inquiry)Writer_clear,
    .tp_methods = Writer_methods,
    .tp_members = Writer_members,
};

/* 1 written, 0 left for the caller, -1 error. */
static int
fanout_one(PyObject *item, PyObject *frame, Py_ssize_t max_buffer)
{
    WriterObject *writer;
    PyObject *attr;
    int ok;
    Py_ssize_t queued;

#if PY_VERSION_HEX >= 0x030D0000
    if (PyObject_GetOptionalAttr(item, str_writer, &attr) < 0) {
#else
    if (_PyObject_LookupAttr(item, str_writer, &attr) < 0) {
#endif
        return -1;
    }
    if (attr == NULL || Py_TYPE(attr) != &WriterType) {
        Py_XDECREF(attr);
        return 0;
    }
    writer = (WriterObject *)attr;
    ok = writer->plain && !writer->busy;
    if (ok) {
        ok = protocol_open(writer);
    }
    if (ok > 0) {
        int closing = transport_closing(writer);
        ok = closing < 0 ? -1 : !closing;
    }
    if (ok > 0) {
        queued = queued_bytes(writer);
        if (queued < 0) {
            ok = -1;
        }
        else if (queued > max_buffer) {
            ok = 0;
        }
        else if (queued > 0 ? transport_write(writer, frame) : write_data(writer, frame)) {
            ok = -1;
        }
    }
    Py_DECREF(attr);
    return ok;
}

static PyObject *
fanout(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *iterator, *item, *left, *frame, *skip;
    Py_ssize_t max_buffer, written = 0;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fanout() takes exactly 4 arguments");
        return NULL;
    }
    frame = args[1];
    max_buffer = PyLong_AsSsize_t(args[2]);
    if (max_buffer == -1 && PyErr_Occurred()) {
        return NULL;
    }
    skip = args[3];
    if (!PyObject_CheckBuffer(frame)) {
        PyErr_SetString(PyExc_TypeError, "fanout() needs a bytes-like frame");
        return NULL;
    }
    iterator = PyObject_GetIter(args[0]);
    if (iterator == NULL) {
        return NULL;
    }
    left = PyList_New(0);
    if (left == NULL) {
        Py_DECREF(iterator);
        return NULL;
    }
    while ((item = PyIter_Next(iterator)) != NULL) {
        int done = item == skip ? 1 : fanout_one(item, frame, max_buffer);

        if (done < 0 || (done == 0 && item != skip && PyList_Append(left, item) < 0)) {
            Py_DECREF(item);
            goto error;
        }
        if (done > 0 && item != skip) {
            written++;
        }
        Py_DECREF(item);
    }
    if (PyErr_Occurred()) {
        goto error;
    }
    Py_DECREF(iterator);
    return Py_BuildValue("nN", written, left);

error:
    Py_DECREF(iterator);
    Py_DECREF(left);
    return NULL;
}

static PyMethodDef methods[] = {
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(items, frame, max_buffer, skip) -> (written, left)\n\n"
     "Write frame to the writer of every item but skip; return how many were\n"
     "written and the items left for the caller's own path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wskit.speedups.write", "Direct socket writes for wskit.", -1, methods,
};

static PyObject *
intern(const char *name)
{
    return PyUnicode_InternFromString(name);
}

PyMODINIT_FUNC
PyInit_write(void)
{
    PyObject *mod;

    str_is_closing = intern("is_closing");
    str_get_write_buffer_size = intern("get_write_buffer_size");
    str_write = intern("write");
    str_state = intern("state");
    str_close_sent = intern("close_sent");
    str_writer = intern("_writer");
    if (str_is_closing == NULL || str_get_write_buffer_size == NULL || str_write == NULL ||
        str_state == NULL || str_close_sent == NULL || str_writer == NULL) {
        return NULL;
    }
    if (PyType_Ready(&WriterType) < 0) {
        return NULL;
    }
    mod = PyModule_Create(&module);
    if (mod == NULL) {
        return NULL;
    }
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(mod, "Writer", (PyObject *)&WriterType) < 0) {
        Py_DECREF(&WriterType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
