<?php
echo "index of sub: ", $_SERVER['SCRIPT_NAME'], "\n";
