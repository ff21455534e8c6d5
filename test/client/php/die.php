<?php
// promises 1 MB, sends 100000 bytes, then the worker dies
header('Content-Length: 1000000');
echo str_repeat('x', 100000);
flush();
posix_kill(getmypid(), 9);
