/* Writing a frame straight to the socket when the transport has nothing queued.
 *
 * write_through(transport, fd, data) -> bool
 *
 * asyncio's transport.write() on an idle socket ends in one send() anyway; the
 * cost around it (the method call, its checks, socket.send's argument parsing)
 * is most of a small frame's cost when a broadcast writes the same frame to
 * thousands of sockets. This does the same in C: when the transport is open
 * and holds no unsent bytes, send() the data on its socket; whatever did not
 * go (all of it on EAGAIN or an error) is handed to transport.write(), which
 * queues it, or reports the error the way it always does. Ordering is kept
 * because nothing is queued ahead of it.
 *
 * The caller passes the socket's file descriptor only for plain socket
 * transports (no TLS, no wrapper with a buffer of its own), and -1 for the
 * rest: then this is transport.write() behind the same closing check.
 * Returns False, writing nothing, when the transport is closing: its socket
 * may be closed already (uvloop closes it at once), so the descriptor is not
 * touched then.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

static PyObject *str_is_closing;
static PyObject *str_get_write_buffer_size;
static PyObject *str_write;

static PyObject *
call_write(PyObject *transport, PyObject *data)
{
    PyObject *result = PyObject_CallMethodOneArg(transport, str_write, data);
    if (result == NULL) {
        return NULL;
    }
    Py_DECREF(result);
    Py_RETURN_TRUE;
}

static PyObject *
write_through(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *transport, *data, *flag, *size_obj;
    int closing;
    long fd;
    Py_ssize_t queued;
    Py_buffer view;
    ssize_t sent;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "write_through() takes exactly 3 arguments");
        return NULL;
    }
    transport = args[0];
    data = args[2];
    fd = PyLong_AsLong(args[1]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }

    flag = PyObject_CallMethodNoArgs(transport, str_is_closing);
    if (flag == NULL) {
        return NULL;
    }
    closing = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (closing < 0) {
        return NULL;
    }
    if (closing) {
        Py_RETURN_FALSE;
    }
    if (fd < 0) {
        return call_write(transport, data);
    }

    size_obj = PyObject_CallMethodNoArgs(transport, str_get_write_buffer_size);
    if (size_obj == NULL) {
        return NULL;
    }
    queued = PyLong_AsSsize_t(size_obj);
    Py_DECREF(size_obj);
    if (queued == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (queued != 0) {
        return call_write(transport, data);
    }

    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    do {
        sent = send((int)fd, view.buf, (size_t)view.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent == view.len) {
        PyBuffer_Release(&view);
        Py_RETURN_TRUE;
    }
    if (sent <= 0) {
        /* EAGAIN, or an error the transport will meet and report itself. */
        PyBuffer_Release(&view);
        return call_write(transport, data);
    }
    {
        PyObject *rest = PyBytes_FromStringAndSize((const char *)view.buf + sent, view.len - sent);
        PyObject *result;

        PyBuffer_Release(&view);
        if (rest == NULL) {
            return NULL;
        }
        result = call_write(transport, rest);
        Py_DECREF(rest);
        return result;
    }
}

static PyMethodDef methods[] = {
    {"write_through", (PyCFunction)(void (*)(void))write_through, METH_FASTCALL,
     "write_through(transport, fd, data) -> bool\n\n"
     "Send data on the socket fd at once when transport has nothing queued, the rest\n"
     "through transport.write(); False, writing nothing, when transport is closing."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wskit.speedups.write", "Direct socket writes for wskit.", -1, methods,
};

PyMODINIT_FUNC
PyInit_write(void)
{
    str_is_closing = PyUnicode_InternFromString("is_closing");
    str_get_write_buffer_size = PyUnicode_InternFromString("get_write_buffer_size");
    str_write = PyUnicode_InternFromString("write");
    if (str_is_closing == NULL || str_get_write_buffer_size == NULL || str_write == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
