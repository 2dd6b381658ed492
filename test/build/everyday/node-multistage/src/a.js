console.log('module a');
