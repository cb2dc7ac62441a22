/* paths: where the default script and page are, independent of the current directory, and the
 * page a script ships beside itself. */
#ifndef CONFAB_PATHS_H
#define CONFAB_PATHS_H

/* The directory the defaults come from, found from the binary's own path (/proc/self/exe):
 * the build tree "<exe dir>/.." when it holds scripts/chat.lua (build/confab), else the installed
 * data directory "<exe dir>/../share/confab" (bin/confab). Computed once; never NULL. */
const char *paths_data_dir(void);

/* "<data dir>/scripts/chat.lua" and "<data dir>/web" (static strings). */
const char *paths_default_script(void);
const char *paths_default_web(void);

/* The page a script ships: the directory beside it named after it with ".web" in place of
 * ".lua" (scripts/examples/gorilla.lua -> scripts/examples/gorilla.web/). Returns a malloc'd
 * path when that directory exists, else NULL. */
char *paths_script_page(const char *script);

#endif
