/* winenv.exe: run a Windows command with environment variables that Wine would override.
 *
 * Wine rebuilds some variables (TEMP, TMP, PATH, USERPROFILE, LOCALAPPDATA, APPDATA, ...) from the
 * prefix's registry for a process started from Unix, so `TEMP=X wine prog.exe` does not reach prog.exe.
 * A Windows parent's environment block is passed on as is, though. So: every variable
 * WINLAB_SET_<NAME>=<value> in winenv's own environment becomes <NAME>=<value> (and is itself
 * removed), then the rest of winenv's command line runs as a child, which inherits the std handles.
 * winenv exits with the child's exit code, 127 if it could not be started. The child is in a job
 * object that is killed when winenv goes away, so killing winenv (a timeout) kills the child too.
 * Built by scripts/setup-wine.sh with gcc-mingw-w64-x86-64; used by tests/windows/winlab.py.
 */
#include <windows.h>
#include <wchar.h>

static const wchar_t PREFIX[] = L"WINLAB_SET_";

static void fail(const char *what)
{
    char msg[256];
    DWORD written;
    int n = wsprintfA(msg, "winenv: %s failed (error %lu)\r\n", what, GetLastError());
    WriteFile(GetStdHandle(STD_ERROR_HANDLE), msg, (DWORD)n, &written, NULL);
}

/* Apply WINLAB_SET_* variables; returns FALSE on failure. */
static BOOL apply_env(void)
{
    wchar_t *block = GetEnvironmentStringsW();
    size_t prefix_len = wcslen(PREFIX);
    size_t total = 0;
    if (block == NULL)
        return FALSE;
    /* Copy the block first: changing the environment while walking it is undefined. */
    for (wchar_t *p = block; *p; p += wcslen(p) + 1)
        total += wcslen(p) + 1;
    wchar_t *copy = HeapAlloc(GetProcessHeap(), 0, (total + 1) * sizeof(wchar_t));
    if (copy == NULL)
        return FALSE;
    memcpy(copy, block, (total + 1) * sizeof(wchar_t));
    FreeEnvironmentStringsW(block);
    for (wchar_t *p = copy; *p; p += wcslen(p) + 1) {
        if (wcsncmp(p, PREFIX, prefix_len) != 0)
            continue;
        wchar_t *eq = wcschr(p + prefix_len, L'=');
        if (eq == NULL || eq == p + prefix_len)
            continue;
        *eq = L'\0';
        if (!SetEnvironmentVariableW(p + prefix_len, eq + 1) || !SetEnvironmentVariableW(p, NULL))
            return FALSE;
        *eq = L'=';
    }
    return TRUE;
}

/* The command line after winenv's own argv[0], verbatim (so the child sees the caller's quoting). */
static wchar_t *command_tail(void)
{
    wchar_t *p = GetCommandLineW();
    if (*p == L'"') {
        for (p++; *p && *p != L'"'; p++)
            ;
        if (*p)
            p++;
    } else {
        while (*p && *p != L' ' && *p != L'\t')
            p++;
    }
    while (*p == L' ' || *p == L'\t')
        p++;
    return p;
}

static void make_inheritable(DWORD which, STARTUPINFOW *si)
{
    HANDLE h = GetStdHandle(which);
    if (h != NULL && h != INVALID_HANDLE_VALUE)
        SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
    if (which == STD_INPUT_HANDLE)
        si->hStdInput = h;
    else if (which == STD_OUTPUT_HANDLE)
        si->hStdOutput = h;
    else
        si->hStdError = h;
}

int main(void)
{
    wchar_t *tail = command_tail();
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits;
    DWORD code = 127;
    HANDLE job;

    if (*tail == L'\0') {
        DWORD written;
        static const char usage[] = "usage: WINLAB_SET_NAME=value ... winenv.exe PROGRAM [ARGS...]\r\n";
        WriteFile(GetStdHandle(STD_ERROR_HANDLE), usage, sizeof usage - 1, &written, NULL);
        return 2;
    }
    if (!apply_env()) {
        fail("setting the environment");
        return 127;
    }
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    make_inheritable(STD_INPUT_HANDLE, &si);
    make_inheritable(STD_OUTPUT_HANDLE, &si);
    make_inheritable(STD_ERROR_HANDLE, &si);

    job = CreateJobObjectW(NULL, NULL);
    if (job != NULL) {
        ZeroMemory(&limits, sizeof limits);
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        SetInformationJobObject(job, JobObjectExtendedLimitInformation, &limits, sizeof limits);
    }
    /* CreateProcessW may write into the command line buffer: hand it a copy. */
    size_t len = wcslen(tail) + 1;
    wchar_t *cmd = HeapAlloc(GetProcessHeap(), 0, len * sizeof(wchar_t));
    if (cmd == NULL)
        return 127;
    memcpy(cmd, tail, len * sizeof(wchar_t));
    if (!CreateProcessW(NULL, cmd, NULL, NULL, TRUE, CREATE_SUSPENDED, NULL, NULL, &si, &pi)) {
        fail("starting the command");
        return 127;
    }
    if (job != NULL)
        AssignProcessToJobObject(job, pi.hProcess);
    ResumeThread(pi.hThread);
    CloseHandle(pi.hThread);
    WaitForSingleObject(pi.hProcess, INFINITE);
    if (!GetExitCodeProcess(pi.hProcess, &code))
        code = 1;
    CloseHandle(pi.hProcess);
    return (int)code;
}
