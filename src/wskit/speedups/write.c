/* Writing frames straight to the socket, one connection or thousands at once.
 *
 * asyncio's transport.write() on an idle socket ends in one send() anyway; the
 * Python around it (the call, its checks, socket.send's argument parsing) costs
 * as much as the system call for a small frame, and a broadcast pays it once
 * per receiver. This module holds the C side of wskit.asyncio.direct_write:
 *
 * Writer(transport, fd, plain, check_closing)
 *     One connection's writer. write(data) sends data on the socket at once
 *     when the transport holds nothing queued, and hands what the socket did
 *     not take (all of it on EAGAIN or an error, which the transport then
 *     meets and reports) to transport.write(); ordering holds because nothing
 *     is ever queued ahead of a direct send. fd is -1 where only the
 *     transport may write (TLS, other transports, a closing connection).
 *
 *     The connection keeps its flags up to date: `open` (no close frame
 *     sent or received) and `busy` (a fragmented message is being sent).
 *     The writer counts what it is given to write, for wskit.metrics:
 *     `bytes_written`, and `messages_written`, the frames that end a data
 *     message (FIN set, opcode 0, 1 or 2), read off their headers. A few
 *     additions in C per write, so always on: counting costs a metered
 *     connection nothing on its send path.
 *
 * fanout(items, frame, max_buffer, skip) -> (written, left)
 *     Writes one frame to the writer of every item but `skip`, in one C
 *     loop: items is a dict {item: writer}, or an iterable of items with a
 *     `frame_writer` attribute. Items it cannot serve are returned in `left` for
 *     the caller's own path: no writer, a frame of their own needed
 *     (compression, client masking), busy, no longer open, or more than
 *     max_buffer bytes queued. Only the writers are touched, which matters
 *     when there are 10 000 of them: every object read per receiver is a
 *     likely cache miss.
 *
 * The Python fallback in direct_write.py has the same behaviour; the test
 * suite runs both.
 *
 * No mutable static state: the Writer type and the interned method names live
 * in the module's state (multi-phase init, a heap type), so each interpreter
 * has its own. The module declares that it needs the GIL (Py_mod_gil): a
 * Writer's flags and the dict and list fanout() walks are not locked.
 */
#if defined(_WIN32)
#error "wskit.speedups.write needs sendmsg() and <sys/uio.h>: setup.py builds it on Linux only"
#endif

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/types.h>

/* Without MSG_NOSIGNAL a write to a socket the peer reset raises SIGPIPE
 * (macOS has only the per-socket SO_NOSIGPIPE): refuse to build rather than
 * depend on the process ignoring the signal. */
#ifndef MSG_NOSIGNAL
#error "wskit.speedups.write needs MSG_NOSIGNAL: setup.py builds it on Linux only"
#endif

/* Everything the module holds, one per module object (per interpreter). */
typedef struct {
    PyTypeObject *writer_type;
    PyObject *str_is_closing;
    PyObject *str_get_write_buffer_size;
    PyObject *str_write;
    PyObject *str_writer;
} ModuleState;

typedef struct {
    PyObject_HEAD
    PyObject *transport;
    int fd;
    char open;          /* no close frame sent or received */
    char plain;         /* takes the frame every plain connection takes */
    char busy;          /* a fragmented message is being sent */
    char queued;        /* the transport may hold unsent bytes */
    char check_closing; /* ask transport.is_closing() before each write */
    unsigned long long bytes_written;    /* bytes given to write, control frames included */
    unsigned long long messages_written; /* frames written that end a data message */
} WriterObject;

/* The state of the module that made the writer's type (Writer cannot be
   subclassed, so the writer's type is that one). */
static inline ModuleState *
state_of(WriterObject *self)
{
    return (ModuleState *)PyType_GetModuleState(Py_TYPE(self));
}

/* 1: closing, 0: not, -1: error. */
static int
transport_closing(WriterObject *self)
{
    PyObject *flag;
    int closing;

    if (!self->check_closing) {
        return 0;
    }
    flag = PyObject_CallMethodNoArgs(self->transport, state_of(self)->str_is_closing);
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
    size_obj =
        PyObject_CallMethodNoArgs(self->transport, state_of(self)->str_get_write_buffer_size);
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
    PyObject *result = PyObject_CallMethodOneArg(self->transport, state_of(self)->str_write, data);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    self->queued = 1;
    return 0;
}

/* What a send left of part (bytes) from offset on: a view when part is bytes
   (immutable, so the transport may keep it), else a copy. */
static PyObject *
rest_of(PyObject *part, const char *buf, Py_ssize_t offset, Py_ssize_t len)
{
    PyObject *view, *rest;

    if (!PyBytes_CheckExact(part)) {
        return PyBytes_FromStringAndSize(buf + offset, len - offset);
    }
    view = PyMemoryView_FromObject(part);
    if (view == NULL) {
        return NULL;
    }
    rest = PySequence_GetSlice(view, offset, len);
    Py_DECREF(view);
    return rest;
}

/* send() buf (the bytes of data) now; what the socket does not take goes to
   the transport. 0 or -1 on error. */
static int
send_now(WriterObject *self, PyObject *data, const char *buf, Py_ssize_t len)
{
    ssize_t sent;
    PyObject *rest;
    int result;

    do {
        sent = send(self->fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent == len) {
        return 0;
    }
    if (sent <= 0) {
        /* EAGAIN, or an error the transport will meet and report itself. */
        return transport_write(self, data);
    }
    rest = rest_of(data, buf, sent, len);
    if (rest == NULL) {
        return -1;
    }
    result = transport_write(self, rest);
    Py_DECREF(rest);
    return result;
}

/* The frames in buf[0:len] that end a data message (FIN set, opcode 0, 1 or 2).
   buf holds whole frames, or a header whose payload comes in the next pieces
   (write_parts): *skip carries the bytes of a payload still to pass over. */
static unsigned long long
message_ends(const unsigned char *buf, Py_ssize_t len, unsigned long long *skip)
{
    unsigned long long count = 0, length;
    Py_ssize_t pos = 0, head;
    int i;

    while (pos < len) {
        if (*skip) {
            unsigned long long left = (unsigned long long)(len - pos);
            if (*skip >= left) {
                *skip -= left;
                return count;
            }
            pos += (Py_ssize_t)*skip;
            *skip = 0;
            continue;
        }
        if (len - pos < 2) {
            return count; /* not a frame header: nothing more to read */
        }
        length = buf[pos + 1] & 0x7F;
        head = 2;
        if (length == 126) {
            if (len - pos < 4) {
                return count;
            }
            length = ((unsigned long long)buf[pos + 2] << 8) | buf[pos + 3];
            head = 4;
        }
        else if (length == 127) {
            if (len - pos < 10) {
                return count;
            }
            length = 0;
            for (i = 2; i < 10; i++) {
                length = (length << 8) | buf[pos + i];
            }
            head = 10;
        }
        if (buf[pos + 1] & 0x80) {
            head += 4; /* the masking key */
        }
        if ((buf[pos] & 0x88) == 0x80) {
            count++;
        }
        pos += head;
        *skip = length;
    }
    return count;
}

/* Count data as written (see the module's docstring); 0 or -1 on error. */
static int
count_written(WriterObject *self, PyObject *data, unsigned long long *skip)
{
    Py_buffer view;

    if (PyBytes_CheckExact(data)) {
        self->bytes_written += (unsigned long long)PyBytes_GET_SIZE(data);
        self->messages_written += message_ends(
            (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), skip);
        return 0;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    self->bytes_written += (unsigned long long)view.len;
    self->messages_written += message_ends((const unsigned char *)view.buf, view.len, skip);
    PyBuffer_Release(&view);
    return 0;
}

/* Write data, the transport known to be open; 0 or -1 on error. */
static int
write_data(WriterObject *self, PyObject *data)
{
    Py_buffer view;
    Py_ssize_t queued;
    int result;

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
    if (PyBytes_CheckExact(data)) {
        return send_now(self, data, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    result = send_now(self, data, (const char *)view.buf, view.len);
    PyBuffer_Release(&view);
    return result;
}

static int
Writer_init(WriterObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"transport", "fd", "plain", "check_closing", NULL};
    PyObject *transport;
    int fd, plain, check_closing;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oipp", kwlist, &transport, &fd, &plain,
                                     &check_closing)) {
        return -1;
    }
    Py_INCREF(transport);
    Py_XSETREF(self->transport, transport);
    self->fd = fd;
    self->open = 1;
    self->plain = (char)plain;
    self->check_closing = (char)check_closing;
    self->busy = 0;
    self->bytes_written = 0;
    self->messages_written = 0;
    /* Whatever was written before (the handshake) may still be queued. */
    self->queued = 1;
    return 0;
}

static int
Writer_traverse(WriterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self)); /* a heap type: its instances hold it */
    Py_VISIT(self->transport);
    return 0;
}

static int
Writer_clear(WriterObject *self)
{
    Py_CLEAR(self->transport);
    return 0;
}

static void
Writer_dealloc(WriterObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    Writer_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
Writer_write(WriterObject *self, PyObject *data)
{
    int closing = transport_closing(self);
    unsigned long long skip = 0;

    if (closing < 0) {
        return NULL;
    }
    if (closing) {
        Py_RETURN_FALSE;
    }
    if (count_written(self, data, &skip) < 0 || write_data(self, data) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

#define MAX_PARTS 16

/* Send parts (a list of bytes) with one sendmsg(); what the socket does not
   take goes to the transport: the rest of the part it stopped in, then the
   parts after it. 0 or -1 on error. */
static int
send_parts(WriterObject *self, PyObject *parts)
{
    struct iovec iov[MAX_PARTS];
    struct msghdr msg;
    Py_ssize_t n = PyList_GET_SIZE(parts), i;
    ssize_t sent;

    memset(&msg, 0, sizeof(msg));
    for (i = 0; i < n; i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);
        iov[i].iov_base = PyBytes_AS_STRING(part);
        iov[i].iov_len = (size_t)PyBytes_GET_SIZE(part);
    }
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    do {
        sent = sendmsg(self->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        sent = 0; /* EAGAIN, or an error the transport will meet and report */
    }
    for (i = 0; i < n; i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);
        Py_ssize_t len = PyBytes_GET_SIZE(part);
        int result;

        if (sent >= len) {
            sent -= len;
            continue;
        }
        if (sent > 0) {
            PyObject *rest = rest_of(part, PyBytes_AS_STRING(part), sent, len);
            if (rest == NULL) {
                return -1;
            }
            result = transport_write(self, rest);
            Py_DECREF(rest);
            sent = 0;
        }
        else {
            result = transport_write(self, part);
        }
        if (result < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
Writer_write_parts(WriterObject *self, PyObject *parts)
{
    Py_ssize_t n, i, queued;
    int closing, all_bytes = 1;
    unsigned long long skip = 0;

    if (!PyList_Check(parts)) {
        PyErr_SetString(PyExc_TypeError, "write_parts() needs a list");
        return NULL;
    }
    closing = transport_closing(self);
    if (closing < 0) {
        return NULL;
    }
    if (closing) {
        Py_RETURN_FALSE;
    }
    n = PyList_GET_SIZE(parts);
    for (i = 0; i < n; i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);

        all_bytes &= PyBytes_CheckExact(part);
        if (count_written(self, part, &skip) < 0) {
            return NULL;
        }
    }
    queued = self->fd < 0 ? 1 : queued_bytes(self);
    if (queued < 0) {
        return NULL;
    }
    if (queued == 0 && all_bytes && n <= MAX_PARTS) {
        if (send_parts(self, parts) < 0) {
            return NULL;
        }
        Py_RETURN_TRUE;
    }
    /* Part by part: large payloads are not copied to be joined. */
    for (i = 0; i < PyList_GET_SIZE(parts); i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);
        int result;

        Py_INCREF(part);
        result = write_data(self, part);
        Py_DECREF(part);
        if (result < 0) {
            return NULL;
        }
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

static PyMethodDef Writer_methods[] = {
    {"write", (PyCFunction)Writer_write, METH_O,
     "write(data) -> bool\n\nWrite data now (see the module); False, writing nothing, when the\n"
     "transport is closing."},
    {"write_parts", (PyCFunction)Writer_write_parts, METH_O,
     "write_parts(parts) -> bool\n\nWrite a list of pieces in order, with one sendmsg() when the\n"
     "transport holds nothing; False, writing nothing, when the transport is closing."},
    {"detach", (PyCFunction)Writer_detach, METH_NOARGS,
     "detach()\n\nStop sending on the socket directly: the connection is closing or lost,\n"
     "and its descriptor may soon belong to another socket."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Writer_members[] = {
    {"transport", T_OBJECT, offsetof(WriterObject, transport), READONLY, "The transport."},
    {"fd", T_INT, offsetof(WriterObject, fd), READONLY,
     "The socket sent on directly, or -1."},
    {"open", T_BOOL, offsetof(WriterObject, open), 0,
     "Whether the connection may still send data frames (the connection sets it)."},
    {"plain", T_BOOL, offsetof(WriterObject, plain), READONLY,
     "Whether fanout() may write the common frame to this connection."},
    {"busy", T_BOOL, offsetof(WriterObject, busy), 0,
     "Set while a fragmented message is being sent: fanout() leaves it alone."},
    {"bytes_written", T_ULONGLONG, offsetof(WriterObject, bytes_written), READONLY,
     "Bytes written (given to the socket or the transport), control frames included."},
    {"messages_written", T_ULONGLONG, offsetof(WriterObject, messages_written), READONLY,
     "Frames written that end a data message (FIN set, opcode 0, 1 or 2)."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Writer_slots[] = {
    {Py_tp_doc, "Writer(transport, fd, plain, check_closing)\n\n"
                "Writes one connection's frames, on the socket directly when nothing is queued."},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_init, (void *)Writer_init},
    {Py_tp_dealloc, (void *)Writer_dealloc},
    {Py_tp_traverse, (void *)Writer_traverse},
    {Py_tp_clear, (void *)Writer_clear},
    {Py_tp_methods, Writer_methods},
    {Py_tp_members, Writer_members},
    {0, NULL},
};

static PyType_Spec Writer_spec = {
    .name = "wskit.speedups.write.Writer",
    .basicsize = sizeof(WriterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Writer_slots,
};

/* 1 written, 0 left for the caller, -1 error. ends: the frame's message ends. */
static int
fanout_one(ModuleState *state, PyObject *writer_obj, PyObject *frame, Py_ssize_t max_buffer,
           unsigned long long ends)
{
    WriterObject *writer;
    Py_ssize_t queued;
    int closing;

    if (writer_obj == NULL || Py_TYPE(writer_obj) != state->writer_type) {
        return 0;
    }
    writer = (WriterObject *)writer_obj;
    if (!writer->open || !writer->plain || writer->busy) {
        return 0;
    }
    closing = transport_closing(writer);
    if (closing) {
        return closing < 0 ? -1 : 0;
    }
    queued = queued_bytes(writer);
    if (queued < 0) {
        return -1;
    }
    if (queued > max_buffer) {
        return 0;
    }
    if ((queued > 0 ? transport_write(writer, frame) : write_data(writer, frame)) < 0) {
        return -1;
    }
    writer->bytes_written += (unsigned long long)PyBytes_GET_SIZE(frame);
    writer->messages_written += ends;
    return 1;
}

/* Account for one item: written, skipped, or left; -1 on error. */
static int
fanout_item(ModuleState *state, PyObject *item, PyObject *writer, PyObject *frame,
            Py_ssize_t max_buffer, unsigned long long ends, PyObject *skip, PyObject *left,
            Py_ssize_t *written)
{
    int done;

    if (item == skip) {
        return 0;
    }
    done = fanout_one(state, writer, frame, max_buffer, ends);
    if (done < 0) {
        return -1;
    }
    if (done > 0) {
        (*written)++;
        return 0;
    }
    return PyList_Append(left, item);
}

static int
fanout_dict(ModuleState *state, PyObject *items, PyObject *frame, Py_ssize_t max_buffer,
            unsigned long long ends, PyObject *skip, PyObject *left, Py_ssize_t *written)
{
    Py_ssize_t pos = 0, size = PyDict_GET_SIZE(items);
    PyObject *key, *value;

    while (PyDict_Next(items, &pos, &key, &value)) {
        int result;

        /* Writing may run Python code (transport methods); hold on to the
           pair and notice if the dict changes under the loop. */
        Py_INCREF(key);
        Py_INCREF(value);
        result = fanout_item(state, key, value, frame, max_buffer, ends, skip, left, written);
        Py_DECREF(key);
        Py_DECREF(value);
        if (result < 0) {
            return -1;
        }
        if (PyDict_GET_SIZE(items) != size) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during fanout()");
            return -1;
        }
    }
    return 0;
}

/* Where items of one type keep `frame_writer` when it is a slot (as on Conn),
   read there directly instead of through a generic attribute lookup. One per
   fanout() call, on its stack: the type is held so that its address cannot be
   reused by another while the call runs. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t offset; /* -1: not a slot, look the attribute up */
} SlotCache;

/* A new reference to item's writer, or NULL (with an error set or not). */
static PyObject *
writer_of(ModuleState *state, SlotCache *cache, PyObject *item)
{
    PyTypeObject *type = Py_TYPE(item);
    PyObject *writer = NULL;

    if (type != cache->type) {
        PyObject *descr = _PyType_Lookup(type, state->str_writer);

        cache->offset = -1;
        if (descr != NULL && Py_TYPE(descr) == &PyMemberDescr_Type) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            if (member->type == T_OBJECT_EX) {
                cache->offset = member->offset;
            }
        }
        Py_INCREF(type);
        Py_XSETREF(cache->type, type);
    }
    if (cache->offset >= 0) {
        writer = *(PyObject **)((char *)item + cache->offset);
        Py_XINCREF(writer);
        return writer;
    }
#if PY_VERSION_HEX >= 0x030D0000
    (void)PyObject_GetOptionalAttr(item, state->str_writer, &writer);
#else
    (void)_PyObject_LookupAttr(item, state->str_writer, &writer);
#endif
    return writer;
}

static int
fanout_iterable(ModuleState *state, PyObject *items, PyObject *frame, Py_ssize_t max_buffer,
                unsigned long long ends, PyObject *skip, PyObject *left, Py_ssize_t *written)
{
    PyObject *iterator, *item, *writer;
    SlotCache cache = {NULL, -1};
    int result = 0;

    iterator = PyObject_GetIter(items);
    if (iterator == NULL) {
        return -1;
    }
    while (result == 0 && (item = PyIter_Next(iterator)) != NULL) {
        writer = writer_of(state, &cache, item);
        result = writer == NULL && PyErr_Occurred() ? -1 : 0;
        if (result == 0) {
            result = fanout_item(state, item, writer, frame, max_buffer, ends, skip, left,
                                 written);
        }
        Py_XDECREF(writer);
        Py_DECREF(item);
    }
    Py_XDECREF(cache.type);
    Py_DECREF(iterator);
    if (result == 0 && PyErr_Occurred()) {
        result = -1;
    }
    return result;
}

static PyObject *
fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    PyObject *items, *frame, *skip, *left;
    Py_ssize_t max_buffer, written = 0;
    unsigned long long ends, payload_left = 0;
    int result;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fanout() takes exactly 4 arguments");
        return NULL;
    }
    items = args[0];
    frame = args[1];
    skip = args[3];
    if (!PyBytes_Check(frame)) {
        PyErr_SetString(PyExc_TypeError, "fanout() needs the frame as bytes");
        return NULL;
    }
    max_buffer = PyLong_AsSsize_t(args[2]);
    if (max_buffer == -1 && PyErr_Occurred()) {
        return NULL;
    }
    /* Read once, counted on every writer written to. */
    ends = message_ends((const unsigned char *)PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame),
                        &payload_left);
    left = PyList_New(0);
    if (left == NULL) {
        return NULL;
    }
    if (PyDict_CheckExact(items)) {
        result = fanout_dict(state, items, frame, max_buffer, ends, skip, left, &written);
    }
    else {
        result = fanout_iterable(state, items, frame, max_buffer, ends, skip, left, &written);
    }
    if (result < 0) {
        Py_DECREF(left);
        return NULL;
    }
    return Py_BuildValue("nN", written, left);
}

static PyMethodDef methods[] = {
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(items, frame, max_buffer, skip) -> (written, left)\n\n"
     "Write frame to the writer of every item but skip; return how many were\n"
     "written and the items left for the caller's own path."},
    {NULL, NULL, 0, NULL},
};

static int
write_exec(PyObject *module)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);

    state->str_is_closing = PyUnicode_InternFromString("is_closing");
    state->str_get_write_buffer_size = PyUnicode_InternFromString("get_write_buffer_size");
    state->str_write = PyUnicode_InternFromString("write");
    state->str_writer = PyUnicode_InternFromString("frame_writer");
    if (state->str_is_closing == NULL || state->str_get_write_buffer_size == NULL ||
        state->str_write == NULL || state->str_writer == NULL) {
        return -1;
    }
    state->writer_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &Writer_spec, NULL);
    if (state->writer_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, state->writer_type);
}

static int
write_traverse(PyObject *module, visitproc visit, void *arg)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);

    Py_VISIT(state->writer_type);
    return 0;
}

static int
write_clear(PyObject *module)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);

    Py_CLEAR(state->writer_type);
    Py_CLEAR(state->str_is_closing);
    Py_CLEAR(state->str_get_write_buffer_size);
    Py_CLEAR(state->str_write);
    Py_CLEAR(state->str_writer);
    return 0;
}

static void
write_free(void *module)
{
    (void)write_clear((PyObject *)module);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, (void *)write_exec},
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
    .m_name = "wskit.speedups.write",
    .m_doc = "Direct socket writes for wskit.",
    .m_size = sizeof(ModuleState),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = write_traverse,
    .m_clear = write_clear,
    .m_free = write_free,
};

PyMODINIT_FUNC
PyInit_write(void)
{
    return PyModuleDef_Init(&module);
}
