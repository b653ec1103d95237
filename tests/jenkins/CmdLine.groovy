// A model of how Windows reads one line of a .bat file (what Jenkins' `bat` step runs), so that the Linux
// test machine can check the quoting that ciCache generates for `bat` and then run the command it names.
//
// Three stages, as on Windows:
//  1. cmd expands %...% (in a batch file %% is one literal %, an unknown %VAR% and %0-%9 become empty);
//  2. cmd scans for its operators: outside "..." a ^ escapes the next character and & | < > split or
//     redirect the command (the model refuses those: ciCache never means them); a " toggles quoting and
//     stays in the line;
//  3. the program splits what is left into argv with the MS C runtime rules (CommandLineToArgvW).
class CmdLine {

    static List<String> parse(String line, Map<String, String> env) {
        String text = line.trim()
        text = expandPercent(text, env)
        text = operators(text)
        if (text.startsWith('@')) {
            text = text.substring(1)
        }
        return argv(text)
    }

    static String expandPercent(String line, Map<String, String> env) {
        Map<String, String> upper = [:]
        env.each { k, v -> upper[k.toUpperCase()] = v }
        StringBuilder out = new StringBuilder()
        int i = 0
        while (i < line.length()) {
            char c = line.charAt(i)
            if (c != ('%' as char)) {
                out.append(c)
                i++
                continue
            }
            if (i + 1 < line.length()) {
                char next = line.charAt(i + 1)
                if (next == ('%' as char)) {
                    out.append('%')
                    i += 2
                    continue
                }
                if (Character.isDigit(next) || next == ('*' as char)) {
                    i += 2 // a batch parameter: Jenkins' script gets none
                    continue
                }
                if (next == ('~' as char)) {
                    throw new IllegalArgumentException("cmd would read %~ as a parameter modifier in: ${line}")
                }
            }
            int close = line.indexOf('%', i + 1)
            if (close < 0) {
                i = line.length() // a lone % at the end is dropped
                continue
            }
            String name = line.substring(i + 1, close)
            out.append(upper[name.toUpperCase()] ?: '')
            i = close + 1
        }
        return out.toString()
    }

    static String operators(String line) {
        StringBuilder out = new StringBuilder()
        boolean quoted = false
        int i = 0
        while (i < line.length()) {
            char c = line.charAt(i)
            if (c == ('"' as char)) {
                quoted = !quoted
                out.append(c)
            } else if (quoted) {
                out.append(c)
            } else if (c == ('^' as char)) {
                if (i + 1 >= line.length()) {
                    throw new IllegalArgumentException("cmd would read a trailing ^ as a line continuation in: ${line}")
                }
                out.append(line.charAt(i + 1))
                i++
            } else if ('&|<>'.indexOf((int) c) >= 0) {
                throw new IllegalArgumentException("cmd would act on an unescaped '${c}' at ${i} in: ${line}")
            } else {
                out.append(c)
            }
            i++
        }
        return out.toString()
    }

    static List<String> argv(String line) {
        List<String> args = []
        int i = 0
        int n = line.length()
        while (i < n && Character.isWhitespace(line.charAt(i))) {
            i++
        }
        // argv[0], the program: up to the next quote if it starts with one, else up to white space.
        StringBuilder prog = new StringBuilder()
        if (i < n && line.charAt(i) == ('"' as char)) {
            int close = line.indexOf('"', i + 1)
            prog.append(close < 0 ? line.substring(i + 1) : line.substring(i + 1, close))
            i = close < 0 ? n : close + 1
        } else {
            while (i < n && !Character.isWhitespace(line.charAt(i))) {
                prog.append(line.charAt(i))
                i++
            }
        }
        args << prog.toString()
        while (true) {
            while (i < n && Character.isWhitespace(line.charAt(i))) {
                i++
            }
            if (i >= n) {
                break
            }
            StringBuilder arg = new StringBuilder()
            boolean quoted = false
            while (i < n) {
                char c = line.charAt(i)
                if (c == ('\\' as char)) {
                    int start = i
                    while (i < n && line.charAt(i) == ('\\' as char)) {
                        i++
                    }
                    int count = i - start
                    if (i < n && line.charAt(i) == ('"' as char)) {
                        arg.append('\\' * (count.intdiv(2)))
                        if (count % 2 == 1) {
                            arg.append('"')
                            i++
                        }
                    } else {
                        arg.append('\\' * count)
                    }
                } else if (c == ('"' as char)) {
                    if (quoted && i + 1 < n && line.charAt(i + 1) == ('"' as char)) {
                        arg.append('"') // "" inside quotes is one literal quote (MSVC 2008 and later)
                        i += 2
                    } else {
                        quoted = !quoted
                        i++
                    }
                } else if (!quoted && Character.isWhitespace(c)) {
                    break
                } else {
                    arg.append(c)
                    i++
                }
            }
            args << arg.toString()
        }
        return args
    }
}
