#!/usr/bin/env -S node ../../dist/cli.js cgi
// The CGI program of lighttpd.conf: the kernel runs `tsgi cgi` (here the repository's build,
// found from the script's directory, where lighttpd runs CGI programs) on this module, which
// hands it examples/hello.mjs. No shell in between (see examples/apache/tsgi.mjs). Installed:
// `#!/usr/bin/env -S tsgi cgi` and your app's path.
export { default } from '../hello.mjs';
