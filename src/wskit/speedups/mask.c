/* The WebSocket masking kernel (RFC 6455 section 5.3), compiled at install time.
 *
 * apply_mask(data, mask) -> bytes XORs every byte of data with the 4-byte key
 * repeated. It works eight bytes at a time on the key widened to 64 bits, which
 * the compiler turns into vector instructions where the target has them; the
 * pure-Python version in wskit.protocol.frames is the reference and fallback.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
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
    {
        const unsigned char *in = (const unsigned char *)data.buf;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
        const unsigned char *key = (const unsigned char *)mask.buf;
        Py_ssize_t n = data.len, i = 0;
        uint32_t key32;
        uint64_t key64;

        memcpy(&key32, key, 4);
        key64 = ((uint64_t)key32 << 32) | key32;
        /* memcpy keeps unaligned loads and stores well defined; compilers
           emit plain moves for it. */
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
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask repeated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wskit.speedups.mask", "Compiled kernels of wskit.", -1, methods,
};

PyMODINIT_FUNC
PyInit_mask(void)
{
    return PyModule_Create(&module);
}
