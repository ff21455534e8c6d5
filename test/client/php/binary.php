<?php
// every byte value 0..255, 1024 times (256 KiB), with CR LF NUL and high bytes
header('Content-Type: application/octet-stream');
$all = '';
for ($i = 0; $i < 256; $i++) $all .= chr($i);
echo str_repeat($all, 1024);
