<?php
error_log('a message for the log');
echo "still answered\n";
