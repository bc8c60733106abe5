/*
 * test_writer.c - every writer kind delivers the bytes, errors stick, and
 * a path writer never replaces a good file with a failed one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpprof.h>

#include "core/writer.h"
#include "support.h"

static void test_buffer_writer_collects_everything(void **state)
{
    (void)state;
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(cp_writer_printf(w, "%d,", i % 10), 0);
    size_t len;
    const char *data = cpprof_writer_data(w, &len);
    assert_int_equal(len, 20000);
    assert_int_equal(cpprof_writer_bytes(w), 20000);
    assert_memory_equal(data, "0,1,2,", 6);
    assert_int_equal(cpprof_writer_close(w), 0);
}

static void test_fd_writer_writes_through_pipe(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_fd(&w, p[1]), 0);
    assert_int_equal(cp_writer_write(w, "hello", 5), 0);
    assert_int_equal(cpprof_writer_close(w), 0);
    close(p[1]);
    char buf[16] = {0};
    assert_int_equal(read(p[0], buf, sizeof buf), 5);
    assert_string_equal(buf, "hello");
    close(p[0]);
}

static int failing_sink(void *arg, const void *data, size_t len)
{
    (void)data;
    (void)len;
    ++*(int *)arg;
    return -EIO;
}

static void test_errors_are_sticky(void **state)
{
    (void)state;
    int calls = 0;
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_callback(&w, failing_sink, &calls), 0);
    char big[40000];
    memset(big, 'x', sizeof big);
    assert_int_equal(cp_writer_write(w, big, sizeof big), -EIO);
    assert_int_equal(cp_writer_write(w, "more", 4), -EIO);
    assert_int_equal(cpprof_writer_error(w), -EIO);
    assert_int_equal(cpprof_writer_close(w), -EIO);
    assert_int_equal(calls, 1); /* nothing is sent after the first failure */
}

static void test_full_nonblocking_pipe_reports_eagain(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_fd(&w, p[1]), 0);
    static char chunk[1 << 20];
    int rc = 0;
    for (int i = 0; i < 8 && rc == 0; i++)
        rc = cp_writer_write(w, chunk, sizeof chunk);
    if (rc == 0)
        rc = cpprof_writer_close(w);
    else
        assert_int_equal(cpprof_writer_close(w), -EAGAIN);
    assert_int_equal(rc, -EAGAIN);
    close(p[0]);
    close(p[1]);
}

static void test_path_writer_is_atomic(void **state)
{
    (void)state;
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "p.txt");
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cp_writer_printf(w, "first"), 0);
    assert_null(cpt_read_file(path, NULL)); /* not visible before close */
    assert_int_equal(cpprof_writer_close(w), 0);
    char *got = cpt_read_file(path, NULL);
    assert_string_equal(got, "first");
    free(got);

    /* A failed second save leaves the first file and no temporary. */
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    cp_writer_printf(w, "second, partial");
    cp_writer_fail(w, -ENOSPC);
    assert_int_equal(cpprof_writer_close(w), -ENOSPC);
    got = cpt_read_file(path, NULL);
    assert_string_equal(got, "first");
    free(got);
    char *ls = NULL;
    cpt_run(&ls, "ls -A '%s'", dir);
    assert_string_equal(ls, "p.txt\n");
    free(ls);

    /* A folder that does not exist is an error at open, not a crash. */
    char *missing = cpt_path(dir, "no/such/dir/p.txt");
    assert_int_equal(cpprof_writer_open_path(&w, missing), -ENOENT);
    free(missing);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    cpprof_writer *w = (cpprof_writer *)1;
    assert_int_equal(cpprof_writer_open_fd(&w, -1), -EBADF);
    assert_int_equal(cpprof_writer_open_file(&w, NULL), -EINVAL);
    assert_int_equal(cpprof_writer_open_callback(&w, NULL, NULL), -EINVAL);
    assert_int_equal(cpprof_writer_open_path(&w, ""), -EINVAL);
    assert_int_equal(cpprof_writer_open_path(&w, NULL), -EINVAL);
    assert_int_equal(cpprof_writer_open_buffer(NULL), -EINVAL);
    assert_int_equal(cpprof_writer_close(NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffer_writer_collects_everything),
        cmocka_unit_test(test_fd_writer_writes_through_pipe),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_full_nonblocking_pipe_reports_eagain),
        cmocka_unit_test(test_path_writer_is_atomic),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
